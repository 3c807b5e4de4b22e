"""Helpers shared by the server tests (a uniquely named module: test dirs have no __init__)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.runtime import Runtime
from murakkab_lg.testing.instant_engine import engine_factory, instant_deployments, synthetic_profiles

# Synthetic routing table: `fast` is cheaper (listed first) but only `smart` meets classify >= 0.8
# and is the only one with a `code` score.
QUALITY = {"fast": {"classify": 0.6, "extract": 0.7, "answer": 0.5},
           "smart": {"classify": 0.9, "extract": 0.9, "answer": 0.8, "code": 0.8}}


def make_runtime(instant_url: str, default: str | None = "fast") -> Runtime:
    deps = instant_deployments(["fast", "smart"], base_url=instant_url)
    return Runtime(deps, synthetic_profiles(deps, QUALITY), engine_factory=engine_factory, default=default)


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
