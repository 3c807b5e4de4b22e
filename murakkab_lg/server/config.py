"""The `murakkab serve --config FILE` file: what the server runs and how it protects itself.

A YAML or JSON file validated by `ServeConfig` (unknown keys are errors, so a typo never silently
falls back to a default). Every key is optional; an empty file serves the embedded CPU ladder.

    # serve.yaml
    embedded_models: [tiny, small]     # embedded ladder models to serve (default: every pulled one)
    deployments:                       # or: your own deployments (model x engine x placement)
      - name: qwen-7b-h100
        model: qwen2.5-7b-instruct
        engine: {engine: vllm, tensor_parallel_size: 1}
        placement: {device: H100, gpus: [0]}
    profiles: [profiles/h100.json]     # profile files for those deployments (with provenance)
    engine_factory: pkg.module:fn      # optional: build adapters yourself, fn(deployment, replica, **engine_options)
    engine_options: {}
    policy: greedy                     # a registered policy name
    objective: energy                  # energy | latency | cost
    default: small                     # deployment for calls with no intent, node or deployment
    warm: [small]                      # deployments started before the server accepts requests
    api_keys_env: MURAKKAB_API_KEYS    # comma-separated Bearer keys read from this variable
    body_limit_bytes: 1048576          # larger request bodies get 413
    max_inflight: 256                  # requests served at once ...
    max_queue: 1024                    # ... and waiting; beyond both, 429 with Retry-After
    retry_after_s: 1
    telemetry_records: 10000           # call records kept in memory (metrics count them all)

API keys may also be listed under `api_keys`, but a file is easy to leak: prefer the variable.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import Deployment, Objective

__all__ = ("DEFAULT_KEYS_ENV", "ServeConfig", "build_runtime", "load_config")

DEFAULT_KEYS_ENV = "MURAKKAB_API_KEYS"


class ServeConfig(BaseModel):
    """The validated config file (see the module docstring for an example)."""

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
    api_keys: list[Annotated[str, Field(min_length=8)]] = []
    api_keys_env: str = DEFAULT_KEYS_ENV
    body_limit_bytes: Annotated[int, Field(ge=1024)] = 1 << 20
    max_inflight: Annotated[int, Field(ge=1)] = 256
    max_queue: Annotated[int, Field(ge=0)] = 1024
    retry_after_s: Annotated[int, Field(ge=1)] = 1
    telemetry_records: Annotated[int, Field(ge=100)] = 10_000

    @model_validator(mode="after")
    def _consistent(self) -> ServeConfig:
        if self.deployments and self.embedded_models is not None:
            raise ValueError("give either `deployments` or `embedded_models`, not both")
        if self.deployments and not self.profiles:
            raise ValueError("`deployments` need `profiles` (profile files with provenance) to plan with")
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate deployment names in {names}")
        if self.engine_factory is not None and ":" not in self.engine_factory:
            raise ValueError(f"engine_factory {self.engine_factory!r} must look like 'package.module:function'")
        return self

    def resolved_api_keys(self, extra: list[str] | None = None) -> tuple[str, ...]:
        """Keys from the file, the environment variable and the command line, deduplicated."""
        env = [k.strip() for k in os.environ.get(self.api_keys_env, "").split(",") if k.strip()]
        return tuple(dict.fromkeys([*self.api_keys, *env, *(extra or [])]))


def load_config(path: Path | str | None) -> ServeConfig:
    """Read and validate a config file; `None` gives the defaults (the embedded ladder)."""
    if path is None:
        return ServeConfig()
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
        cfg = ServeConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors(include_url=False)]
        raise ConfigError(f"config file {path} is invalid:\n" + "\n".join(lines)
                          + "\nTo fix: correct these keys (see docs/server.md for every key).") from None
    base = path.parent
    return cfg.model_copy(update={"profiles": [p if p.is_absolute() else base / p for p in cfg.profiles]})


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def _load_factory(cfg: ServeConfig) -> Any:
    if cfg.engine_factory is None:
        return None
    module, _, attr = cfg.engine_factory.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"engine_factory {cfg.engine_factory!r} cannot be loaded: {e}") from None
    return functools.partial(fn, **cfg.engine_options) if cfg.engine_options else fn


def build_runtime(cfg: ServeConfig) -> Runtime:
    """The Runtime a config describes: its deployments, or the embedded ladder."""
    kwargs: dict[str, Any] = {"policy": cfg.policy, "objective": cfg.objective, "default": cfg.default}
    factory = _load_factory(cfg)
    if factory is not None:
        kwargs["engine_factory"] = factory
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
