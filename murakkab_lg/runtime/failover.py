"""One call's tries: retry what is transient, fall back to another deployment that meets the
node's floor, and when nothing is left raise one error that names every deployment tried.

Why a policy object: the four serving paths (sync/async x complete/stream) differ only in how
they call the engine and how they wait, so every decision (which replica next, is this error
retryable, how long to back off, when to give up) lives here once, and each path is a thin loop:

    tries = Failover(...)
    while True:
        call = tries.begin()            # or `await tries.abegin()`: admission, start, pick a replica
        try: ... the engine call ...
        except BaseException as e:
            tries.failed(call, e)       # re-raises what must not be retried
            tries.recover(call)         # or `await tries.arecover(call)`: restart (cooled down), back off
            continue
        tries.succeeded(call)

Retryable: the engine could not be reached or died (connection refused or reset), or answered
429/502/503/504. Never retried: any other 4xx (the request is at fault) or 500 (the engine
answered; repeating the same input is unlikely to help). A streamed call is retried only before
its first chunk reached the caller: after that, a retry would repeat text already sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from murakkab_lg.errors import (
    EngineError,
    EngineRequestError,
    EngineUnavailableError,
    MurakkabError,
    OverloadedError,
)
from murakkab_lg.policies import Candidate
from murakkab_lg.policies.base import evaluate, objective_value
from murakkab_lg.runtime.admission import Admission
from murakkab_lg.runtime.replicas import Replica, ReplicaPool
from murakkab_lg.spec import Deployment, Intent, Objective, WorkflowNode

__all__ = ("Failover", "RetryPolicy", "meets_floor", "retryable")

_TRANSIENT = frozenset({429, 502, 503, 504})
_JITTER = random.Random()  # shared: seeding a Random per call costs more than the call's own bookkeeping


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard one call tries before it fails."""

    max_attempts: int = 8  # engine calls made for one request, across replicas and deployments
    deadline_s: float = 120.0  # ... and the time they may take together (waits for restarts included)
    backoff_base_s: float = 0.05  # pause after the first failure; doubles each failure ...
    backoff_max_s: float = 2.0  # ... up to this
    jitter: float = 0.5  # each pause is shortened by a random share up to this, so callers spread out

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.deadline_s <= 0 or not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy needs max_attempts >= 1, deadline_s > 0 and 0 <= jitter <= 1")

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        base = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, failures - 1))
        return base * (1.0 - self.jitter * rng.random())


def retryable(exc: BaseException) -> bool:
    """May the same request be sent again (here or elsewhere)?"""
    if isinstance(exc, EngineRequestError):
        return exc.status_code == 429
    if isinstance(exc, EngineUnavailableError):
        return exc.status_code is None or exc.status_code in _TRANSIENT
    return False


def meets_floor(intent: Intent, candidates: Sequence[Candidate], objective: Objective) -> list[Deployment]:
    """Deployments whose measured quality for `intent` meets its `min_quality`, best for the
    objective first (the fallback order when the plan carries no alternatives of its own)."""
    node = WorkflowNode(name=intent.intent, intent=intent)
    floor = intent.constraints.min_quality
    ranked = []
    for c in candidates:
        pred = evaluate(node, c)
        if floor is not None and (pred.quality is None or pred.quality < floor):
            continue
        ranked.append((objective_value(pred, objective), c.deployment))
    ranked.sort(key=lambda x: x[0])
    return [d for _, d in ranked]


@dataclass
class Attempt:
    """What `begin` hands out: the replica to call and the bookkeeping `failed`/`succeeded` need."""

    deployment: Deployment
    replica: Replica
    index: int  # 0 for the first try of the call
    fallback_from: str | None  # the planned deployment, when this try goes elsewhere
    sent: bool = False  # a streamed chunk reached the caller
    dead: bool = False  # the engine could not be reached: restart it before the next try


class Failover:
    """The state of one call's tries (see the module docstring for the loop that drives it)."""

    def __init__(self, deployments: Sequence[Deployment], pool: ReplicaPool,
                 admission: Callable[[str], Admission], policy: RetryPolicy, *,
                 what: str | Callable[[], str], rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deployments = deployments
        self.pool = pool
        self._admission = admission
        self.policy = policy
        self._what = what  # "node 'triage' (classify, min_quality 0.80)": for the final error (or its maker)
        self._rng = rng or _JITTER
        self._clock = clock
        self._t0 = clock()
        self.attempts = 0
        self.failures = 0
        self.tried: dict[str, str] = {}  # deployment -> its state, for the final error
        self._last: BaseException | None = None
        self._gate: Admission | None = None
        self._gone: set[str] = set()  # overloaded, did not start, or did not restart: not again this call
        self._failed_on: dict[str, int] = {}  # deployment -> tries of this call that failed there

    # -- choosing a replica -------------------------------------------------------------------
    def _left_s(self) -> float:
        return self.policy.deadline_s - (self._clock() - self._t0)

    def _choose(self) -> Deployment | None:
        """The first deployment with a replica that may take a call now, those this call failed
        on least first (so a retry goes to a fallback rather than back to what just failed);
        None if none does. (`_pick` then waits only for a replica that is coming back.)"""
        order = self.deployments if not self._failed_on else \
            sorted(self.deployments, key=lambda d: self._failed_on.get(d.name, 0))
        for dep in order:
            if dep.name in self._gone:
                continue
            if not self.pool.is_running(dep.name):
                why = self.pool.start_blocked(dep.name)
                if why is None:
                    return dep  # not started yet: the caller starts it
                self.tried[dep.name] = why[0]  # cooling down after a failed start: not this call
                continue
            if self.pool.available(dep.name):
                return dep
            self.tried[dep.name] = self.pool.describe(dep.name)
        return None

    @property
    def what(self) -> str:
        return self._what if isinstance(self._what, str) else self._what()

    def _give_up(self) -> MurakkabError:
        last = self._last
        if isinstance(last, OverloadedError) and all(s.startswith("overloaded") for s in self.tried.values()):
            return OverloadedError(f"{self.what}: every deployment that may serve it is at its admission limit "
                                   f"({self._states()}). To fix: retry after {last.retry_after_s:g} s or raise "
                                   "the admission limits.", retry_after_s=last.retry_after_s)
        left = "the retry deadline passed" if self._left_s() <= 0 else f"{self.attempts} engine calls made"
        scope = "no deployment that meets its floor" if len(self.deployments) > 1 else "no replica"
        err = EngineUnavailableError(
            f"{self.what}: {scope} could serve it ({left}): {self._states()}. "
            "To fix: check the engines' logs, add a deployment that meets the floor, or relax the floor.")
        err.__cause__ = last
        return err

    def _states(self) -> str:
        return "; ".join(f"{name}: {state}" for name, state in self.tried.items()) or "none could be started"

    def _pick(self) -> Deployment | float:
        """A choice, or the seconds to wait before looking again; raises when nothing is left."""
        if self.attempts >= self.policy.max_attempts:
            raise self._give_up()
        got = self._choose()
        if got is not None:
            return got
        back = any(self.pool.coming_back(d.name) for d in self.deployments if d.name not in self._gone)
        if not back or self.attempts >= self.policy.max_attempts or self._left_s() <= 0:
            raise self._give_up()
        return self._short()  # a replica is restarting or being probed: look again shortly

    def _short(self) -> float:
        return 0.05 * (1.0 - self.policy.jitter * self._rng.random())

    def _attempt(self, dep: Deployment, rep: Replica) -> Attempt:
        primary = self.deployments[0].name
        call = Attempt(dep, rep, self.attempts, None if dep.name == primary else primary)
        self.attempts += 1
        return call

    def _first(self) -> Attempt | None:
        """The usual first try in one step: the planned deployment is running, has a free
        admission slot and a replica that takes the call. None sends the call through the full
        loop (start the deployment, wait for a slot, fall back), which would choose the same."""
        dep = self.deployments[0]
        if not self.pool.is_running(dep.name):
            return None
        gate = self._admission(dep.name)
        if not gate.try_enter():
            return None
        rep = self.pool.pick(dep)
        if rep is None:
            gate.leave()
            return None
        self._gate = gate
        return self._attempt(dep, rep)

    def begin(self) -> Attempt:
        """Block until a replica is admitted (starting its deployment if needed), or raise."""
        if not self.attempts and (call := self._first()) is not None:
            return call
        while True:
            got = self._pick()
            if isinstance(got, float):
                time.sleep(got)
                continue
            dep = got
            gate = self._admission(dep.name)
            try:
                gate.enter()
                self._gate = gate
                if not self.pool.is_running(dep.name):
                    self.pool.ensure(dep)
            except MurakkabError as e:
                self._not_served(dep, e)
                continue
            if (call := self._take(dep)) is not None:
                return call
            time.sleep(self._short())

    async def abegin(self) -> Attempt:
        """`begin` without blocking the event loop (engine starts run in a worker thread)."""
        if not self.attempts and (call := self._first()) is not None:
            return call
        while True:
            got = self._pick()
            if isinstance(got, float):
                await asyncio.sleep(got)
                continue
            dep = got
            gate = self._admission(dep.name)
            try:
                await gate.aenter()
                self._gate = gate
                if not self.pool.is_running(dep.name):
                    await asyncio.to_thread(self.pool.ensure, dep)
            except MurakkabError as e:
                self._not_served(dep, e)
                continue
            if (call := self._take(dep)) is not None:
                return call
            await asyncio.sleep(self._short())

    def _take(self, dep: Deployment) -> Attempt | None:
        """Pick the admitted deployment's replica; None if another call took its half-open probe."""
        rep = self.pool.pick(dep)
        if rep is not None:
            return self._attempt(dep, rep)
        self._leave()
        return None

    def _leave(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave()

    def _not_served(self, dep: Deployment, e: MurakkabError) -> None:
        """Admission refused or the deployment did not start: move on to the next one."""
        self._leave()
        if not isinstance(e, MurakkabError):
            raise e
        self._last = e
        self._gone.add(dep.name)
        if isinstance(e, OverloadedError):
            self.tried[dep.name] = f"overloaded ({self._admission(dep.name).summary()})"
        else:
            self.tried[dep.name] = f"did not start: {_first_line(e)}"

    # -- after the engine call ----------------------------------------------------------------
    def failed(self, call: Attempt, exc: BaseException) -> None:
        """Record a failed try; re-raise `exc` unless another try may follow."""
        self._leave()
        rep = call.replica
        if not isinstance(exc, Exception):  # cancelled, or a consumer that stopped early
            rep.breaker.release()
            raise exc
        if not retryable(exc):
            if isinstance(exc, EngineError):
                rep.breaker.success()  # the engine answered (4xx, 500): it is alive
            else:
                rep.breaker.release()
            raise exc
        self.failures += 1
        self._failed_on[call.deployment.name] = self._failed_on.get(call.deployment.name, 0) + 1
        self._last = exc
        rep.breaker.failure(_first_line(exc))
        call.dead = isinstance(exc, EngineUnavailableError) and exc.status_code is None
        self.tried[call.deployment.name] = f"{_first_line(exc)} (breaker {rep.breaker.describe()})"
        if call.sent:  # part of the answer already reached the caller: a retry would repeat it
            raise exc  # (a dead engine is restarted by the next call that finds it dead)

    def recover(self, call: Attempt) -> None:
        """Restart a dead engine (at most once per restart window) and back off before the next try.

        With a fallback ready, the restart runs in the background and the next try goes there at
        once; with none, the call waits for the restart (other calls wait for the same one).
        """
        if call.dead:
            if self._elsewhere(call):
                self.pool.recover_in_background(call.replica)
            elif not self.pool.recover(call.replica):
                self._restart_failed(call)
        time.sleep(self.policy.backoff_s(self.failures, self._rng))

    async def arecover(self, call: Attempt) -> None:
        if call.dead:
            if self._elsewhere(call):
                self.pool.recover_in_background(call.replica)
            elif not await asyncio.to_thread(self.pool.recover, call.replica):
                self._restart_failed(call)
        await asyncio.sleep(self.policy.backoff_s(self.failures, self._rng))

    def _elsewhere(self, call: Attempt) -> bool:
        """Could the next try go to another deployment without waiting?"""
        for dep in self.deployments:
            if dep.name == call.deployment.name or dep.name in self._gone:
                continue
            if self.pool.is_running(dep.name) and self.pool.available(dep.name):
                return True
            if not self.pool.is_running(dep.name) and self.pool.start_blocked(dep.name) is None:
                return True
        return False

    def _restart_failed(self, call: Attempt) -> None:
        name = call.deployment.name
        self.tried[name] = self.pool.describe(name)
        if not self.pool.available(name):
            self._gone.add(name)  # its window decides when it is tried again, not this call

    def succeeded(self, call: Attempt) -> None:
        self._leave()
        if not call.replica.breaker.clear:
            call.replica.breaker.success()


def _first_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:300]
