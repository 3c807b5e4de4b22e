"""The embedded CPU default: ladder models as llama.cpp deployments, and their shipped profile."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from murakkab_lg.catalog.models import EMBEDDED_LADDER, embedded_model
from murakkab_lg.catalog.profiles import ProfileStore, read_profile_file
from murakkab_lg.catalog.pull import model_path
from murakkab_lg.spec import Deployment, LlamaCppSettings

__all__ = (
    "SHIPPED_CPU_PROFILE",
    "default_llamacpp_settings",
    "embedded_deployments",
    "measured_profile_path",
    "profiled_deployments",
    "pulled_models",
    "shipped_profiles",
    "sweep_deployment",
)

SHIPPED_CPU_PROFILE = "cpu_embedded_profile.json"


def default_llamacpp_settings() -> LlamaCppSettings:
    """All cores for one engine, 4 slots: continuous batching paid 1.5-2.2x at 4 streams here."""
    return LlamaCppSettings(threads=max(1, os.cpu_count() or 1), parallel=4, ctx_size=2048)


def pulled_models() -> list[str]:
    """Ladder models whose file is present at the right size (cheap; hashes are checked at start)."""
    out = []
    for m in EMBEDDED_LADDER:
        p = model_path(m)
        if m.source and p.is_file() and p.stat().st_size == m.source.size_bytes:
            out.append(m.name)
    return out


def embedded_deployments(models: list[str] | None = None) -> list[Deployment]:
    names = [embedded_model(m).name for m in models] if models else [m.name for m in EMBEDDED_LADDER]
    settings = default_llamacpp_settings()
    return [Deployment(name=n, model=n, engine=settings) for n in names]


def measured_profile_path() -> Path:
    from murakkab_lg.catalog.pull import cache_dir

    return cache_dir() / "profiles" / SHIPPED_CPU_PROFILE


def shipped_profiles() -> ProfileStore:
    """The shipped CPU profile, overridden row by row by one measured on this machine, if any."""
    store = ProfileStore()
    shipped = resources.files("murakkab_lg.catalog") / "data" / SHIPPED_CPU_PROFILE
    if shipped.is_file():
        with resources.as_file(shipped) as p:
            store.add(read_profile_file(p).profiles, f"shipped: {SHIPPED_CPU_PROFILE}")
    local = measured_profile_path()
    if local.is_file():
        store.add(read_profile_file(local).profiles, f"measured: {local}")
    return store


# -- settings sweep rows ------------------------------------------------------------------------
# `murakkab profile` also measures non-default llama.cpp settings; those rows are named
# "<model>@t<threads>-np<parallel>" so the default row keeps the bare model name the runtime uses.
_SWEEP_NAME = re.compile(r"^(?P<model>.+)@t(?P<threads>\d+)-np(?P<parallel>\d+)$")


def sweep_deployment(model: str, threads: int, parallel: int) -> Deployment:
    """The Deployment for one llama.cpp setting; the default setting keeps the bare model name."""
    spec = embedded_model(model)
    default = default_llamacpp_settings()
    settings = default.model_copy(update={"threads": threads, "parallel": parallel})
    name = spec.name if settings == default else f"{spec.name}@t{threads}-np{parallel}"
    return Deployment(name=name, model=spec.name, engine=settings)


def profiled_deployments(store: ProfileStore) -> list[Deployment]:
    """Deployments for every embedded row in `store`, sweep rows included, so a runtime can use them."""
    out = []
    ladder = {m.name for m in EMBEDDED_LADDER}
    for prof in store:
        if prof.engine != "llamacpp":
            continue
        m = _SWEEP_NAME.match(prof.deployment)
        if m and m["model"] in ladder:
            out.append(sweep_deployment(m["model"], int(m["threads"]), int(m["parallel"])))
        elif prof.deployment in ladder:
            out.append(Deployment(name=prof.deployment, model=prof.deployment, engine=default_llamacpp_settings()))
    return out
