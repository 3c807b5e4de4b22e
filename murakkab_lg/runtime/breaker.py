"""A per-replica circuit breaker: stop sending calls to a replica that keeps failing.

Why: without one, every call to a dead engine pays a connection timeout and a restart attempt,
and a replica whose restart keeps failing is restarted on every call. The breaker turns a run of
failures into a pause with exponential backoff, then lets exactly one probe through:

    closed --(failure_threshold consecutive failures, or trip())--> open
    open   --(backoff elapsed; the next allow() takes the probe)--> half_open
    half_open --(probe succeeds)--> closed        (backoff resets)
    half_open --(probe fails)-->    open          (backoff doubles, up to open_max_s)

A pure state machine: the clock is injected, nothing sleeps, and every transition happens inside
a call, so tests drive it with a fake clock and the runtime and the simulator share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ("BreakerPolicy", "BreakerState", "CircuitBreaker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """When a breaker opens and for how long."""

    failure_threshold: int = 3  # consecutive failed calls that open it
    open_base_s: float = 1.0  # first pause; each failed probe doubles it ...
    open_max_s: float = 30.0  # ... up to this

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.open_base_s <= 0 or self.open_max_s < self.open_base_s:
            raise ValueError("BreakerPolicy needs failure_threshold >= 1 and 0 < open_base_s <= open_max_s")


class CircuitBreaker:
    """Closed, open or half-open; thread-safe (the sync and async serving paths share one)."""

    def __init__(self, policy: BreakerPolicy | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self.failures = 0  # consecutive
        self.opens = 0  # consecutive openings without a success: sets the backoff
        self._open_until = 0.0
        self._probe_out = False
        self.last_error: str | None = None
        # Closed with no failure since the last success: the common case, which callers on the hot
        # path read as this attribute instead of calling in (no lock, no call).
        self.clear = True

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
                return BreakerState.HALF_OPEN
            return self._state

    def backoff_s(self) -> float:
        """The pause the current (or next) opening lasts."""
        p = self.policy
        return min(p.open_max_s, p.open_base_s * 2 ** max(0, self.opens - 1))

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._open_until - self._clock())

    def would_allow(self) -> bool:
        """`allow()` without taking the probe (for choosing among replicas before admission)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return self._clock() >= self._open_until
            return not self._probe_out

    def allow(self) -> bool:
        """May a call go to this replica now? In half-open, True for exactly one probe."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._clock() < self._open_until:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_out = False
            if self._probe_out:
                return False
            self._probe_out = True
            return True

    def success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self.failures = self.opens = 0
            self._probe_out = False
            self.last_error = None
            self.clear = True

    def failure(self, error: str | None = None) -> None:
        """A failed call. Calls already in flight when it opened may still report: they are counted
        but neither reopen nor lengthen it (only a failed probe doubles the backoff)."""
        with self._lock:
            self.clear = False
            self.failures += 1
            self.last_error = error or self.last_error
            probe_failed = self._state is BreakerState.HALF_OPEN and self._probe_out
            if probe_failed or (self._state is BreakerState.CLOSED and self.failures >= self.policy.failure_threshold):
                self._open()

    def trip(self, error: str | None = None) -> None:
        """Open now, whatever the count (e.g. the replica's engine did not restart)."""
        with self._lock:
            self.clear = False
            self.failures += 1
            self.last_error = error or self.last_error
            self._open()

    def release(self) -> None:
        """A probe ended without a verdict (cancelled): let the next call probe instead."""
        with self._lock:
            self._probe_out = False

    def _open(self) -> None:
        self.opens += 1
        self._state = BreakerState.OPEN
        self._probe_out = False
        self._open_until = self._clock() + self.backoff_s()

    def describe(self) -> str:
        """One line for error messages and status: state, failures, and when it retries."""
        state = self.state
        if state is BreakerState.CLOSED:
            text = "closed" if not self.failures else f"closed ({self.failures} consecutive failures)"
        elif state is BreakerState.OPEN:
            text = f"open for {self.retry_in_s():.1f} s more after {self.failures} consecutive failures"
        else:
            text = f"half-open (probing after {self.failures} consecutive failures)"
        return f"{text}; last error: {self.last_error}" if self.last_error and state is not BreakerState.CLOSED \
            else text
