"""An HttpEngine whose server is a child process we started: health, readiness and CPU time.

llama-server, vLLM and the test engines all become ready the same way (their `/health` answers
200 while the process is alive), so the polling lives here once and each adapter only words its
own errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from murakkab_lg.backends.engines._process import ChildProcess, cpu_seconds_of
from murakkab_lg.backends.engines.base import HttpEngine

__all__ = ("ProcessEngine",)


class ProcessEngine(HttpEngine):
    process: ChildProcess | None = None
    # The address the server binds and is reached at: loopback for a child of the runtime; a Ray
    # actor sets its node's IP so that the runtime on another node can reach it.
    bind_host: str = "127.0.0.1"

    def _await_health(self, timeout_s: float, *, interval_s: float = 0.1,
                      each_poll: Callable[[], None] | None = None) -> bool:
        """True once `/health` answers 200; False on timeout or as soon as the process exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if each_poll is not None:
                    each_poll()
                if not self.process.alive():
                    return False
                try:
                    if probe.get("/health").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(interval_s)
        return False

    def healthy(self) -> bool:
        if self.process is None or not self.process.alive():
            return False
        try:
            return self.client.get("/health", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def cpu_seconds(self) -> float | None:
        return cpu_seconds_of(self.process.pid) if self.process is not None else None
