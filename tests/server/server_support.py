"""Helpers shared by the server tests (a uniquely named module: test dirs have no __init__)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
import yaml

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.catalog.profiles import ProfileFile, write_profile_file
from murakkab_lg.runtime import Runtime
from murakkab_lg.testing.instant_engine import engine_factory, instant_deployments, synthetic_profiles

# Synthetic routing table: `fast` is cheaper (listed first) but only `smart` meets classify >= 0.8
# and is the only one with a `code` score.
QUALITY = {"fast": {"classify": 0.6, "extract": 0.7, "answer": 0.5},
           "smart": {"classify": 0.9, "extract": 0.9, "answer": 0.8, "code": 0.8}}


def make_runtime(instant_url: str, default: str | None = "fast", **kwargs: object) -> Runtime:
    deps = instant_deployments(["fast", "smart"], base_url=instant_url)
    return Runtime(deps, synthetic_profiles(deps, QUALITY), engine_factory=engine_factory, default=default,
                   **kwargs)  # type: ignore[arg-type]


def write_setup(tmp_path: Path, **overrides: object) -> Path:
    """A config serving two instant-engine deployments (spawned by the runtime) with synthetic profiles."""
    deps = instant_deployments(["fast", "smart"])
    store = synthetic_profiles(deps, {"fast": {"classify": 0.6}, "smart": {"classify": 0.9}})
    write_profile_file(tmp_path / "profiles.json", ProfileFile(produced_by="test (synthetic)", profiles=tuple(store)))
    cfg = {
        "deployments": [d.model_dump(mode="json") for d in deps],
        "profiles": ["profiles.json"],  # relative to the config file
        "engine_factory": "murakkab_lg.testing.instant_engine:engine_factory",
        "policy": "greedy", "objective": "energy", "default": "fast", "warm": ["fast"],
        **overrides,
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Run `app` under uvicorn on a free 127.0.0.1 port; yields the base URL (no /v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def start_serve(config: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`murakkab serve --config FILE` as a subprocess on a free port, once /health answers 200."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "murakkab_lg.cli", "serve", "--config", str(config),
                             "--port", str(port), "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "murakkab serve did not come up"
        time.sleep(0.2)


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
