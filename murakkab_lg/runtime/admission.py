"""Bounds: per-deployment admission (at most `max_inflight` calls at once, a bounded queue with a bounded
wait behind them, and a clear `OverloadedError` beyond), and per-request caps on `max_tokens` and `n`.

Why in the library and not only in the server: an engine queues without bound (llama-server holds
every request past its slots; vLLM its whole waiting list), so a library user that fires a
thousand calls gets a thousand-deep hidden queue, unbounded latency and memory. Refusing early lets
the runtime spill to another deployment that meets the node's floor, and the caller back off.

One gate serves both the sync (threads) and the async (event loop) serving paths: a slot freed
by `leave()` is handed to the oldest waiter directly (FIFO, no thundering herd), and a waiter that
gives up after being handed a slot passes it on, so no slot is ever lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from murakkab_lg.errors import OverloadedError, RequestLimitError

__all__ = ("Admission", "AdmissionLimits", "RequestCaps")


@dataclass(frozen=True, kw_only=True)
class AdmissionLimits:
    """Per replica of a deployment (a deployment with 2 replicas admits twice as many)."""

    max_inflight: int = 64  # calls sent to the engines at once
    max_queue: int = 1024  # calls waiting for a slot; past this, refused at once
    max_wait_s: float = 60.0  # how long a call waits for a slot before it is refused
    retry_after_s: float = 1.0  # what the refusal tells the caller

    def __post_init__(self) -> None:
        if self.max_inflight < 1 or self.max_queue < 0 or self.max_wait_s < 0 or self.retry_after_s <= 0:
            raise ValueError("AdmissionLimits needs max_inflight >= 1, max_queue >= 0, max_wait_s >= 0, "
                             "retry_after_s > 0")


class _Waiter:
    __slots__ = ("granted", "wake")

    def __init__(self) -> None:
        self.granted = False
        self.wake: object = None


class Admission:
    """The gate of one deployment; `inflight` and `waiting` are live figures for status."""

    def __init__(self, name: str, limits: AdmissionLimits, replicas: int = 1) -> None:
        self.name = name
        self.limits = limits
        self.capacity = limits.max_inflight * max(1, replicas)
        self.max_queue = limits.max_queue * max(1, replicas)
        self.inflight = 0
        self.refused = 0
        self._queue: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def summary(self) -> str:
        return f"{self.inflight} in flight of {self.capacity}, {self.waiting} waiting of {self.max_queue}"

    def _refuse(self, why: str) -> OverloadedError:
        self.refused += 1
        return OverloadedError(
            f"deployment {self.name!r} is overloaded: {why} ({self.summary()}). To fix: retry after "
            f"{self.limits.retry_after_s:g} s, "
            "add replicas, or raise the runtime's admission limits.",
            retry_after_s=self.limits.retry_after_s)

    def _try_enter(self) -> _Waiter | None:
        """Under the lock: take a slot (None) or join the queue (the waiter); raise when full."""
        if self.inflight < self.capacity and not self._queue:
            self.inflight += 1
            return None
        if len(self._queue) >= self.max_queue or self.limits.max_wait_s == 0:
            raise self._refuse("its queue is full")
        w = _Waiter()
        self._queue.append(w)
        return w

    def _give_up(self, w: _Waiter) -> bool:
        """Under the lock: True if `w` was already handed a slot (the caller must use or pass it)."""
        if w.granted:
            return True
        self._queue.remove(w)
        return False

    def try_enter(self) -> bool:
        """Take a free slot now, never waiting or queueing; False when none is free (the caller
        then goes through `enter`/`aenter`, which queue)."""
        with self._lock:
            if self.inflight < self.capacity and not self._queue:
                self.inflight += 1
                return True
            return False

    def enter(self) -> None:
        """Take a slot, waiting at most `max_wait_s` (blocking: the sync path)."""
        with self._lock:
            w = self._try_enter()
            if w is None:
                return
            event = threading.Event()
            w.wake = event.set
        if event.wait(self.limits.max_wait_s):
            return
        with self._lock:
            if self._give_up(w):
                return  # handed a slot just as the wait ran out: take it
            raise self._refuse(f"no slot freed within {self.limits.max_wait_s:g} s")

    async def aenter(self) -> None:
        """Take a slot, waiting at most `max_wait_s` without blocking the event loop."""
        with self._lock:
            w = self._try_enter()
            if w is None:
                return
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

            w.wake = wake
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.limits.max_wait_s)
        except TimeoutError:
            with self._lock:
                if self._give_up(w):
                    return
                raise self._refuse(f"no slot freed within {self.limits.max_wait_s:g} s") from None
        except BaseException:  # cancelled: leave the queue, or pass on a slot already handed over
            with self._lock:
                granted = self._give_up(w)
            if granted:
                self.leave()
            raise

    def leave(self) -> None:
        """Free a slot: hand it to the oldest waiter, else return it."""
        while True:
            with self._lock:
                if not self._queue:
                    self.inflight -= 1
                    return
                w = self._queue.popleft()
                w.granted = True
                wake = w.wake
            try:
                wake()  # type: ignore[operator]
                return
            except RuntimeError:  # that waiter's event loop is gone: nobody will take it, try the next
                continue


@dataclass(frozen=True, kw_only=True)
class RequestCaps:
    """The most one request may ask for; more is refused with `RequestLimitError` (HTTP 400).

    Refused, not clamped: a silently shortened answer looks like a model that stopped early, and
    the caller cannot tell; an error naming the cap lets them ask for what the server allows.
    """

    max_tokens: int | None = 16384  # max_tokens / max_completion_tokens; None: no cap
    n: int = 8  # choices per request

    def check(self, body: dict[str, object]) -> None:
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if self.max_tokens is not None and isinstance(value, int) and value > self.max_tokens:
                raise RequestLimitError(
                    f"{key}={value} is over this runtime's cap of {self.max_tokens}. To fix: ask for at most "
                    f"{self.max_tokens}, or raise the cap (Runtime(caps=RequestCaps(max_tokens=...)) or "
                    "`max_tokens_cap` in the server config).", param=key)
        n = body.get("n")
        if isinstance(n, int) and n > self.n:
            raise RequestLimitError(
                f"n={n} is over this runtime's cap of {self.n} choices per request. To fix: ask for at most "
                f"{self.n}, or raise the cap (Runtime(caps=RequestCaps(n=...)) or `n_cap` in the server config).",
                param="n")
