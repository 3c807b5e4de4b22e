"""The one config file for a Runtime: `Runtime.from_config(path)`, `murakkab serve --config`,
`murakkab profile --config`.

A YAML or JSON mapping validated by `RuntimeConfig` (unknown keys are errors, so a typo never
silently falls back to a default). The server's file is the same schema plus its own keys
(`server.config.ServeConfig` extends this class), so one file serves all three commands.

    # murakkab.yaml
    embedded_models: [tiny, small]     # the embedded CPU ladder (default when no deployments)
    deployments:                       # or: your own deployments (model x engine x placement)
      - name: qwen-7b-h100
        model: qwen2.5-7b-instruct
        engine: {engine: vllm, tensor_parallel_size: 1}
        placement: {device: H100, gpus: [0]}
      - name: ollama-llama                       # a server you already run: never started by us
        model: llama3.2
        engine: {engine: openai, base_url: "http://127.0.0.1:11434/v1", served_model: "llama3.2"}
      - name: nano                               # a hosted model through litellm
        model: gpt-4.1-nano
        engine: {engine: api, litellm_model: openai/gpt-4.1-nano}
    profiles: [profiles.json]          # profile files (from `murakkab profile --config this-file`)
    engine_factory: pkg.module:fn      # optional: build adapters yourself, fn(deployment, replica, **engine_options)
    engine_options: {}
    policy: greedy                     # a registered policy name
    objective: cost                    # energy | latency | cost
    default: nano                      # deployment for calls with no intent, node or deployment
    warm: [nano]                       # deployments started before the first request
    deployment_max_inflight: 64        # per replica of each deployment: calls at its engine at once ...
    deployment_max_queue: 1024         # ... and waiting for one (past both, or after the wait:
    deployment_max_wait_s: 60          #     a fallback, else OverloadedError / HTTP 429)
    max_tokens_cap: 16384              # a call asking for more max_tokens is refused (null: no cap)
    n_cap: 8                           # a call asking for more choices is refused
    adaptive: {dwell_s: 30}            # spill under load and re-plan on drift (docs/adaptive.md); absent: fixed
    cluster:                           # optional: engines as Ray actors on a cluster (docs/cluster.md)
      ray: {address: auto, namespace: murakkab}

Profiles are needed only to plan by intent (`model="murakkab/<intent>"`, annotated nodes); a
request that names its deployment is served without one. Paths are relative to the file.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from murakkab_lg.backends.ray.config import ClusterConfig
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime.admission import AdmissionLimits, RequestCaps
from murakkab_lg.runtime.control import AdaptiveConfig
from murakkab_lg.runtime.runtime import Runtime
from murakkab_lg.spec import Deployment, Objective

__all__ = ("RuntimeConfig", "build_runtime", "load_config", "load_factory", "runtime_from_config")

C = TypeVar("C", bound="RuntimeConfig")


class RuntimeConfig(BaseModel):
    """What a Runtime runs and how it plans (see the module docstring for an example).

    Further top-level sections (like `cluster:` for Ray) are fields here, so every command that
    reads the file accepts them at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedded_models: list[str] | None = None
    deployments: list[Deployment] = []
    profiles: list[Path] = []
    engine_factory: str | None = None
    engine_options: dict[str, Any] = {}
    policy: str = "greedy"
    objective: Objective = Objective.ENERGY
    default: str | None = None
    warm: list[str] = []
    adaptive: AdaptiveConfig | None = None  # None: fixed plans (docs/adaptive.md)
    cluster: ClusterConfig = ClusterConfig()
    deployment_max_inflight: Annotated[int, Field(ge=1)] = 64
    deployment_max_queue: Annotated[int, Field(ge=0)] = 1024
    deployment_max_wait_s: Annotated[float, Field(ge=0)] = 60.0
    max_tokens_cap: Annotated[int, Field(ge=1)] | None = 16384
    n_cap: Annotated[int, Field(ge=1)] = 8

    @model_validator(mode="after")
    def _consistent(self) -> RuntimeConfig:
        if self.deployments and self.embedded_models is not None:
            raise ValueError("give either `deployments` or `embedded_models`, not both")
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate deployment names in {names}")
        if self.engine_factory is not None and self.cluster.ray is not None:
            raise ValueError("give either `engine_factory` or `cluster.ray` (which builds the engines as Ray actors)")
        if self.engine_factory is not None and ":" not in self.engine_factory:
            raise ValueError(f"engine_factory {self.engine_factory!r} must look like 'package.module:function'")
        return self


def load_config(path: Path | str | None, schema: type[C] = RuntimeConfig) -> C:  # type: ignore[assignment]
    """Read and validate a config file against `schema`; `None` gives its defaults (the embedded ladder)."""
    if path is None:
        return schema()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}. To fix: pass an existing file to --config.") from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else _json(text)
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    try:
        cfg = schema.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors(include_url=False)]
        raise ConfigError(f"config file {path} is invalid:\n" + "\n".join(lines)
                          + "\nTo fix: correct these keys (see docs/server.md for every key).") from None
    base = path.parent
    return cfg.model_copy(update={"profiles": [p if p.is_absolute() else base / p for p in cfg.profiles]})


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def load_factory(cfg: RuntimeConfig) -> Any:
    """The config's `engine_factory` with its `engine_options` bound, `RayBackend` for `cluster.ray`
    (engines as Ray actors, so `murakkab profile` measures them where they will serve), or None."""
    if cfg.cluster.ray is not None:
        from murakkab_lg.backends.ray import RayBackend

        return RayBackend(cfg.cluster.ray)
    if cfg.engine_factory is None:
        return None
    module, _, attr = cfg.engine_factory.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"engine_factory {cfg.engine_factory!r} cannot be loaded: {e}") from None
    return functools.partial(fn, **cfg.engine_options) if cfg.engine_options else fn


def build_runtime(cfg: RuntimeConfig, **overrides: Any) -> Runtime:
    """The Runtime a config describes: its deployments, or the embedded ladder. Nothing starts yet."""
    kwargs: dict[str, Any] = {
        "policy": cfg.policy, "objective": cfg.objective, "default": cfg.default, "adaptive": cfg.adaptive,
        "admission": AdmissionLimits(max_inflight=cfg.deployment_max_inflight, max_queue=cfg.deployment_max_queue,
                                     max_wait_s=cfg.deployment_max_wait_s),
        "caps": RequestCaps(max_tokens=cfg.max_tokens_cap, n=cfg.n_cap),
    }
    factory = load_factory(cfg)
    if factory is not None:
        kwargs["engine_factory"] = factory
    if cfg.cluster.ray is not None:  # connects now (an unreachable cluster fails here); the packer's devices
        kwargs["inventory"] = factory.inventory()
    kwargs.update(overrides)
    for p in cfg.profiles:
        if not p.is_file():
            raise ConfigError(f"profile file {p} does not exist. To fix: measure the deployments with "
                              f"`murakkab profile --config <this config> --out {p}`, or remove it from `profiles`.")
    if cfg.deployments:
        runtime = Runtime(cfg.deployments, ProfileStore.load(*cfg.profiles), **kwargs)
    else:
        runtime = Runtime.embedded(models=cfg.embedded_models, **kwargs)
        if cfg.profiles:
            extra = ProfileStore.load(*cfg.profiles)
            runtime.profiles.add(extra, "; ".join(extra.sources))
    for name in cfg.warm:
        if name not in runtime.deployments:
            raise ConfigError(f"warm names unknown deployment {name!r}; valid: {', '.join(runtime.deployments)}")
    return runtime


def runtime_from_config(path: Path | str, **overrides: Any) -> Runtime:
    """`Runtime.from_config(path)`: load, validate, build."""
    return build_runtime(load_config(path), **overrides)
