"""A fake engine for the profiler's tests: answers from a table, reports llama.cpp-style timings."""

from __future__ import annotations

from typing import Any

import pytest

from murakkab_lg.backends.engines.base import FunctionEngine
from murakkab_lg.spec import Deployment


class TimedFakeEngine(FunctionEngine):
    """FunctionEngine plus the two things the profiler reads from llama-server: timings and CPU time."""

    def __init__(self, name: str, answer: Any, fail_after: int | None = None) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.fail_after = fail_after
        super().__init__(name, self._respond)
        self.answer = answer

    def _respond(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C looks like from inside a run
        self.cpu += 0.5
        n_out = int(body.get("max_tokens") or 8)
        return {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer(body)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": n_out},
            "timings": {"prompt_n": 40, "prompt_ms": 20.0, "predicted_n": n_out, "predicted_ms": 10.0 * n_out},
        }

    def cpu_seconds(self) -> float | None:
        return self.cpu


@pytest.fixture
def fake_factory():  # type: ignore[no-untyped-def]
    """Returns (factory, engines): engines records every fake the runner created."""
    engines: list[TimedFakeEngine] = []

    def make(answer: Any, fail_after: int | None = None):  # type: ignore[no-untyped-def]
        def factory(dep: Deployment, replica: int) -> TimedFakeEngine:
            e = TimedFakeEngine(dep.name, answer, fail_after)
            engines.append(e)
            return e
        return factory

    return make, engines
