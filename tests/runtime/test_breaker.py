"""The circuit breaker as a pure state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from murakkab_lg.runtime.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _breaker(**kw: float) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(BreakerPolicy(**kw), clock=clock), clock  # type: ignore[arg-type]


def test_opens_after_threshold_consecutive_failures_and_a_success_resets_the_count() -> None:
    b, _ = _breaker(failure_threshold=3)
    b.failure("refused")
    b.failure("refused")
    b.success()
    b.failure("refused")
    b.failure("refused")
    assert b.state is BreakerState.CLOSED and b.allow()
    b.failure("refused")
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert b.describe() == "open for 1.0 s more after 3 consecutive failures; last error: refused"


def test_half_open_lets_exactly_one_probe_through_and_backoff_doubles_up_to_the_cap() -> None:
    b, clock = _breaker(failure_threshold=1, open_base_s=1.0, open_max_s=3.0)
    b.failure()
    waits = []
    for _ in range(4):
        waits.append(b.retry_in_s())
        clock.t += waits[-1] - 0.01
        assert not b.allow()
        clock.t += 0.01
        assert b.state is BreakerState.HALF_OPEN
        assert b.allow()  # the probe
        assert not b.allow()  # nobody else while it is out
        b.failure()  # probe failed: open again, longer
    assert waits == pytest.approx([1.0, 2.0, 3.0, 3.0])
    clock.t += 3.0
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()
    b.failure()
    assert b.retry_in_s() == pytest.approx(1.0)  # backoff restarted after the success


def test_trip_opens_at_once_and_a_released_probe_lets_the_next_call_probe() -> None:
    b, clock = _breaker(failure_threshold=5, open_base_s=2.0)
    b.trip("engine did not restart")
    assert b.state is BreakerState.OPEN and "did not restart" in b.describe()
    clock.t += 2.0
    assert b.allow()
    b.release()  # the probe was cancelled: no verdict
    assert b.allow()


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerPolicy(open_base_s=5, open_max_s=1)


def test_failures_reported_while_open_neither_reopen_nor_lengthen_it() -> None:
    b, clock = _breaker(failure_threshold=2, open_base_s=1.0, open_max_s=30.0)
    for _ in range(8):  # eight calls that were in flight when the engine died
        b.failure("reset")
    assert b.retry_in_s() == 1.0 and b.failures == 8
    clock.t += 1.0
    assert b.allow()
    b.failure("reset")  # the probe failed: now it doubles
    assert b.retry_in_s() == 2.0
