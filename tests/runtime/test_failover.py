"""Failover decisions on engines whose failures we script: retry, fall back, cool down, give up.

The engines here are FunctionEngines (the seam's fake, for the logic); the same paths on real
llama-server engines, SIGKILLed, are in test_faults_real.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from murakkab_lg.backends.engines import FunctionEngine
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import (
    EngineRequestError,
    EngineStartError,
    EngineUnavailableError,
    OverloadedError,
    RequestLimitError,
)
from murakkab_lg.runtime import Runtime
from murakkab_lg.runtime.admission import Admission, AdmissionLimits, RequestCaps
from murakkab_lg.runtime.breaker import BreakerPolicy
from murakkab_lg.runtime.failover import RetryPolicy, retryable
from murakkab_lg.spec import ApiSettings, Deployment, Intent
from murakkab_lg.testing.scripted_engine import synthetic_profile
from murakkab_lg.wire import Route

FAST = RetryPolicy(backoff_base_s=0.001, backoff_max_s=0.005, deadline_s=5.0)
QUALITY = {"cheap": 0.7, "mid": 0.85, "best": 0.9, "weak": 0.3}  # classify quality; cheap is cheapest


class Scripted(FunctionEngine):
    """A FunctionEngine that can die (calls refused until restarted) and whose starts can fail."""

    def __init__(self, name: str, fn: Callable[[dict], dict], world: dict) -> None:
        super().__init__(name, fn)
        self.world = world

    def start(self, timeout_s: float = 120.0) -> None:
        self.world["starts"][self.name] = self.world["starts"].get(self.name, 0) + 1
        if self.name in self.world["broken"]:
            raise EngineStartError(f"{self.name}: binary exits with code 1")
        super().start(timeout_s)

    def complete(self, body: dict) -> dict:
        if not self.running:
            raise EngineUnavailableError(f"engine {self.name!r} is unreachable (ConnectError: refused)")
        return super().complete(body)

    async def acomplete(self, body: dict) -> dict:
        return self.complete(body)


def _ok(name: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"from {name}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def _runtime(script: dict[str, Callable[[dict], dict]] | None = None, **kw) -> tuple[Runtime, dict]:
    world: dict = {"starts": {}, "broken": set(), "engines": {}}
    script = script or {}

    def factory(dep: Deployment, _replica: int) -> Scripted:
        eng = Scripted(dep.name, script.get(dep.name, lambda body, n=dep.name: _ok(n)), world)
        world["engines"][dep.name] = eng
        return eng

    rows = [synthetic_profile(n, quality={"classify": q}, energy_per_output_token_j=0.1 * (i + 1), tpot_s=0.01,
                              memory_gb=1.0) for i, (n, q) in enumerate(QUALITY.items())]
    deps = [Deployment(name=n, model=n, engine=ApiSettings(litellm_model=n)) for n in QUALITY]
    kw.setdefault("retry", FAST)
    return Runtime(deps, ProfileStore(rows, "synthetic"), engine_factory=factory, **kw), world


BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
ROUTE = Route(intent=Intent("classify", min_quality=0.6))


def test_retryable_is_transport_engine_death_429_and_503_never_other_4xx() -> None:
    assert retryable(EngineUnavailableError("refused"))
    assert retryable(EngineUnavailableError("busy", status_code=503))
    assert retryable(EngineRequestError("slow down", status_code=429))
    assert not retryable(EngineRequestError("bad", status_code=400))
    assert not retryable(EngineRequestError("too long", status_code=413))
    assert not retryable(EngineUnavailableError("bug", status_code=500))
    assert not retryable(ValueError("ours"))


def test_a_dead_engine_with_no_fallback_is_restarted_and_the_call_waits_for_it() -> None:
    rt, world = _runtime()
    only = Route(deployment="cheap")
    assert rt.complete(BODY, only)["model"] == "cheap"
    world["engines"]["cheap"].running = False  # the engine died between calls
    assert rt.complete(BODY, only)["model"] == "cheap"
    assert world["starts"]["cheap"] == 2
    last = rt.telemetry.records()[-2:]
    assert [r.ok for r in last] == [False, True] and last[1].retries == 1 and last[1].fallback_from is None


def test_a_dead_engine_with_a_fallback_is_restarted_in_the_background_while_the_call_moves_on() -> None:
    rt, world = _runtime()
    assert rt.complete(BODY, ROUTE)["model"] == "cheap"
    world["engines"]["cheap"].running = False
    assert rt.complete(BODY, ROUTE)["model"] == "mid"  # the retry went to the fallback at once
    rec = rt.telemetry.records()[-1]
    assert rec.fallback_from == "cheap" and rec.retries == 1
    _wait(lambda: world["engines"]["cheap"].running)  # ... while cheap was restarted behind it
    assert rt.complete(BODY, ROUTE)["model"] == "cheap"


def _wait(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_restart_that_keeps_failing_falls_back_and_is_cooled_down_not_retried_per_call() -> None:
    rt, world = _runtime()
    rt.complete(BODY, ROUTE)
    world["engines"]["cheap"].running = False
    world["broken"].add("cheap")  # the restart fails from now on
    served = [rt.complete(BODY, ROUTE)["model"] for _ in range(20)]
    assert served == ["mid"] * 20  # the next deployment that meets min_quality 0.6, never 'weak'
    assert world["starts"]["cheap"] == 2  # the first start and ONE failed restart: cooled down
    rec = [r for r in rt.telemetry.records() if r.ok][-1]
    assert rec.fallback_from == "cheap" and rec.deployment == "mid"
    rep = rt._pool.replicas("cheap")[0]
    assert rep.restarts_done == 1 and "did not restart" in rep.breaker.describe()


def test_restart_window_doubles_and_a_later_restart_brings_the_primary_back() -> None:
    rt, world = _runtime(breaker=BreakerPolicy(failure_threshold=1, open_base_s=0.05, open_max_s=0.05))
    rt._pool.restart_policy = BreakerPolicy(failure_threshold=1, open_base_s=0.05, open_max_s=0.05)
    rt.complete(BODY, ROUTE)
    rep = rt._pool.replicas("cheap")[0]
    rep.restarts = type(rep.restarts)(rt._pool.restart_policy)
    world["engines"]["cheap"].running = False
    world["broken"].add("cheap")
    assert rt.complete(BODY, ROUTE)["model"] == "mid"
    assert rep.restarts_done == 1
    world["broken"].discard("cheap")  # the fault is fixed: after the window, a probe restarts it
    import time

    time.sleep(0.06)
    rt.complete(BODY, ROUTE)  # the probe finds cheap dead: restarted in the background, served by mid
    _wait(lambda: world["engines"]["cheap"].running)
    assert rt.complete(BODY, ROUTE)["model"] == "cheap"
    assert rep.restarts_done == 2


def test_no_deployment_left_gives_one_error_naming_every_deployment_tried_and_its_state() -> None:
    rt, world = _runtime()
    world["broken"].update({"cheap", "mid", "best"})
    with pytest.raises(EngineUnavailableError) as e:
        rt.complete(BODY, ROUTE)
    msg = str(e.value)
    assert "call (classify, min_quality 0.60)" in msg
    for name in ("cheap", "mid", "best"):
        assert f"{name}: did not start" in msg
    assert "weak" not in msg  # below the floor: never a fallback
    assert "To fix" in msg


def test_a_4xx_is_never_retried_nor_falls_back() -> None:
    def refuse(body: dict) -> dict:
        raise EngineRequestError("engine 'cheap' rejected the request (400): context too long", status_code=400)

    rt, _ = _runtime({"cheap": refuse})
    with pytest.raises(EngineRequestError, match="400"):
        rt.complete(BODY, ROUTE)
    assert len(rt.telemetry.records()) == 1


def test_an_explicit_deployment_has_no_fallback() -> None:
    rt, world = _runtime()
    world["broken"].add("cheap")
    with pytest.raises(EngineUnavailableError, match=r"'cheap'.*cheap: did not start"):
        rt.complete(BODY, Route(deployment="cheap"))


def test_breaker_opens_after_consecutive_503s_and_calls_go_to_the_fallback() -> None:
    calls = {"n": 0}

    def busy(body: dict) -> dict:
        calls["n"] += 1
        raise EngineUnavailableError("engine 'cheap' failed (503): loading model", status_code=503)

    rt, _ = _runtime({"cheap": busy}, breaker=BreakerPolicy(failure_threshold=3, open_base_s=60, open_max_s=60))
    served = [rt.complete(BODY, ROUTE)["model"] for _ in range(6)]
    assert served == ["mid"] * 6
    assert calls["n"] == 3  # then the breaker is open: no call reaches 'cheap' for a minute


def test_stream_retries_before_the_first_chunk_only() -> None:
    state = {"fail_after": 0}

    def answer(body: dict) -> dict:
        return _ok("cheap")

    rt, world = _runtime({"cheap": answer})
    eng_holder: dict = {}

    def stream(body: dict):
        eng = world["engines"]["cheap"]
        eng_holder["e"] = eng
        if state["fail_after"] == 0:
            state["fail_after"] = 1
            raise EngineUnavailableError("connection reset")
        yield from FunctionEngine.stream(eng, body)
        raise EngineUnavailableError("connection reset after the answer started")

    rt.complete(BODY, Route(deployment="cheap"))
    world["engines"]["cheap"].stream = stream  # type: ignore[method-assign]
    chunks = []
    with pytest.raises(EngineUnavailableError, match="after the answer started"):
        for c in rt.stream(BODY, Route(deployment="cheap")):
            chunks.append(c)
    assert chunks  # the first try failed before any chunk and was retried; the second failed mid-way
    tries = rt.telemetry.records()[-2:]
    assert [r.ok for r in tries] == [False, False] and tries[1].retries == 1


def test_async_path_falls_back_too() -> None:
    rt, world = _runtime()
    world["broken"].add("cheap")
    assert asyncio.run(rt.acomplete(BODY, ROUTE))["model"] == "mid"


def test_caps_refuse_max_tokens_and_n_over_the_configured_limit() -> None:
    rt, _ = _runtime(caps=RequestCaps(max_tokens=64, n=2))
    with pytest.raises(RequestLimitError, match="max_tokens=65 is over this runtime's cap of 64") as e:
        rt.complete({**BODY, "max_tokens": 65}, ROUTE)
    assert e.value.param == "max_tokens"
    with pytest.raises(RequestLimitError, match="max_completion_tokens"):
        rt.complete({**BODY, "max_completion_tokens": 100}, ROUTE)
    with pytest.raises(RequestLimitError, match="n=3"):
        rt.complete({**BODY, "n": 3}, ROUTE)
    assert rt.complete({**BODY, "max_tokens": 64, "n": 2}, ROUTE)


def test_admission_bounds_inflight_queue_and_wait() -> None:
    gate = Admission("d", AdmissionLimits(max_inflight=2, max_queue=1, max_wait_s=0.2))
    gate.enter()
    gate.enter()
    got: list[str] = []

    def waiter() -> None:
        gate.enter()
        got.append("in")

    t = threading.Thread(target=waiter)
    t.start()
    import time

    time.sleep(0.05)
    assert gate.waiting == 1
    with pytest.raises(OverloadedError, match="queue is full") as e:
        gate.enter()
    assert e.value.retry_after_s == 1.0
    gate.leave()  # handed straight to the waiter
    t.join(1)
    assert got == ["in"] and gate.inflight == 2 and gate.waiting == 0
    with pytest.raises(OverloadedError, match=r"no slot freed within 0\.2 s"):
        gate.enter()
    assert gate.waiting == 0 and gate.inflight == 2


def test_admission_async_waiters_are_served_in_order_and_cancellation_loses_no_slot() -> None:
    gate = Admission("d", AdmissionLimits(max_inflight=1, max_queue=10, max_wait_s=5))

    async def main() -> list[int]:
        order: list[int] = []
        await gate.aenter()

        async def one(i: int) -> None:
            await gate.aenter()
            order.append(i)
            await asyncio.sleep(0.01)
            gate.leave()

        tasks = [asyncio.create_task(one(i)) for i in range(4)]
        victim = asyncio.create_task(one(99))
        await asyncio.sleep(0.01)
        victim.cancel()
        gate.leave()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert gate.inflight == 0 and gate.waiting == 0


def test_an_overloaded_primary_spills_to_the_fallback_and_all_full_is_overloaded() -> None:
    rt, _ = _runtime(admission=AdmissionLimits(max_inflight=1, max_queue=0))
    rt.admission("cheap").enter()  # cheap is full
    assert rt.complete(BODY, ROUTE)["model"] == "mid"
    rt.admission("mid").enter()
    rt.admission("best").enter()
    with pytest.raises(OverloadedError, match="every deployment that may serve it is at its admission limit"):
        rt.complete(BODY, ROUTE)
