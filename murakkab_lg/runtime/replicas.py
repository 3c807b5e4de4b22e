"""Running deployments: start once, share across nodes and workflows, pick a replica, restart, stop.

Failures are cooled down here, not retried on every call:
- each replica has a call breaker (`breaker`): after consecutive failed calls it is skipped for a
  backoff, then probed with one call (see runtime/breaker.py);
- each replica has a restart breaker (`restarts`): a dead engine is restarted at most once per
  window, and the window doubles while restarts keep failing;
- each deployment has a start breaker: a deployment whose first start failed is not started again
  by the next call, only once its window has passed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from murakkab_lg.backends.engines import EngineAdapter, create_engine
from murakkab_lg.backends.telemetry.energy import GpuEnergyMeter, shared_attributor
from murakkab_lg.catalog.hardware import watts_per_core
from murakkab_lg.errors import EngineUnavailableError
from murakkab_lg.runtime.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from murakkab_lg.runtime.telemetry import NO_ENERGY_METER, CpuEnergyMeter, NoEnergyMeter
from murakkab_lg.spec import Deployment

__all__ = ("RESTART_POLICY", "Replica", "ReplicaPool")

EngineFactory = Callable[[Deployment, int], EngineAdapter]
RESTART_POLICY = BreakerPolicy(failure_threshold=1, open_base_s=2.0, open_max_s=60.0)


def _meter_for(engine: EngineAdapter) -> CpuEnergyMeter | GpuEnergyMeter | NoEnergyMeter:
    """The engine's own meter where it has one (a Ray replica reads NVML on its node), else measured
    energy from this host's GPU counters for an engine placed on GPUs (when NVML works), else CPU
    time x watts per core, estimated, where the engine can report its CPU time; else none (unknown)."""
    own = getattr(engine, "energy_meter", None)
    meter = own() if callable(own) else None
    if meter is not None:
        return meter
    gpus = getattr(engine, "gpus", ())
    if gpus:
        attributor = shared_attributor()
        if attributor is not None:
            return attributor.meter(gpus)
    if not engine.reports_cpu:
        return NO_ENERGY_METER
    return CpuEnergyMeter(engine.cpu_seconds, watts_per_core())


@dataclass(eq=False)
class Replica:
    deployment: Deployment
    engine: EngineAdapter
    meter: CpuEnergyMeter | GpuEnergyMeter | NoEnergyMeter
    index: int = 0
    inflight: int = 0
    draining: bool = False  # set by ReplicaPool.drain: pick() sends it nothing new
    restarting: bool = False  # a restart is under way: calls wait for it rather than fail
    stopped: bool = False  # the pool stopped it: a restart still pending must not bring it back
    restarts_done: int = 0  # restarts attempted (failed ones too): a cooled-down replica keeps this low
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    restarts: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(RESTART_POLICY))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def takes_calls(self) -> bool:
        return not self.draining and not self.restarting and not self.engine.draining \
            and (self.breaker.clear or self.breaker.state is not BreakerState.OPEN)


class ReplicaPool:
    """Deployment name -> started replicas. Starting is idempotent and serialised per deployment."""

    def __init__(self, factory: EngineFactory = create_engine, start_timeout_s: float = 180.0, *,
                 breaker: BreakerPolicy | None = None, restart: BreakerPolicy = RESTART_POLICY) -> None:
        self._factory = factory
        self.start_timeout_s = start_timeout_s
        self.breaker_policy = breaker or BreakerPolicy()
        self.restart_policy = restart
        self._replicas: dict[str, list[Replica]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._starts: dict[str, CircuitBreaker] = {}
        self._background: set[Replica] = set()  # replicas being restarted by a worker thread
        self._guard = threading.Lock()

    def running(self) -> list[str]:
        return [name for name, rs in self._replicas.items() if rs]

    def is_running(self, name: str) -> bool:
        return bool(self._replicas.get(name))

    def replicas(self, name: str) -> list[Replica]:
        """The started replicas of `name` (empty when stopped); never starts anything."""
        return list(self._replicas.get(name, ()))

    def start_blocked(self, name: str) -> tuple[str, float] | None:
        """Why `name` may not be started now and for how many seconds; None when it may."""
        b = self._starts.get(name)
        if b is None or b.state is not BreakerState.OPEN:
            return None
        return f"did not start ({b.describe()})", b.retry_in_s()

    def ensure(self, deployment: Deployment) -> list[Replica]:
        replicas = self._replicas.get(deployment.name)
        if replicas:
            return replicas
        with self._guard:
            lock = self._locks.setdefault(deployment.name, threading.Lock())
            starts = self._starts.setdefault(deployment.name, CircuitBreaker(self.restart_policy))
        with lock:
            replicas = self._replicas.get(deployment.name)
            if replicas:
                return replicas
            if starts.state is BreakerState.OPEN:
                raise EngineUnavailableError(
                    f"deployment {deployment.name!r} did not start and is cooling down ({starts.describe()}). "
                    "To fix: read the error above in the log, or wait for the next start attempt.")
            started: list[Replica] = []
            try:
                for i in range(deployment.replicas):
                    engine = self._factory(deployment, i)
                    engine.start(self.start_timeout_s)
                    started.append(Replica(deployment, engine, _meter_for(engine), index=i,
                                           breaker=CircuitBreaker(self.breaker_policy),
                                           restarts=CircuitBreaker(self.restart_policy)))
            except BaseException as e:
                for r in started:
                    r.engine.stop()
                starts.trip(str(e).splitlines()[0][:300] if str(e) else type(e).__name__)
                raise
            starts.success()
            self._replicas[deployment.name] = started
            return started

    def pick(self, deployment: Deployment) -> Replica | None:
        """The replica with the fewest calls in flight among those that take calls (not draining,
        breaker not open); None when the deployment is not started or no replica takes calls."""
        replicas = self._replicas.get(deployment.name, ())
        if len(replicas) == 1:  # the usual case: no ordering to do
            r = replicas[0]
            return r if r.takes_calls() and (r.breaker.clear or r.breaker.allow()) else None
        live = sorted((r for r in replicas if r.takes_calls()), key=lambda r: r.inflight)
        for r in live:
            if r.breaker.clear or r.breaker.allow():  # in half-open only one caller gets the probe
                return r
        return None

    def available(self, name: str) -> bool:
        """Would `pick` find a replica now? (It does not take a half-open breaker's probe.)"""
        for r in self._replicas.get(name, ()):  # a loop, not any(...): asked once per call
            if r.takes_calls() and (r.breaker.clear or r.breaker.would_allow()):
                return True
        return False

    def describe(self, name: str) -> str:
        """Each replica's state in one line (for the error that ends a call's tries)."""
        parts = []
        for r in self._replicas.get(name, ()):
            draining = r.draining or getattr(r.engine, "draining", False)
            state = "draining" if draining else f"breaker {r.breaker.describe()}"
            parts.append(f"replica {r.index}: {state}, {r.restarts_done} restarts")
        return "; ".join(parts) or "not started"

    def coming_back(self, name: str) -> bool:
        """Is a replica of `name` being restarted, or probed by another call, right now? A call
        waits for that; an open breaker alone makes it go elsewhere or fail fast instead."""
        return any(r.restarting or r.breaker.state is BreakerState.HALF_OPEN
                   for r in self._replicas.get(name, ()) if not r.draining)

    def recover(self, replica: Replica) -> bool:
        """Restart `replica` if its engine is dead and its restart window allows; True if it runs.

        Concurrent callers wait for one restart instead of each starting their own; a failed
        restart opens the replica's call breaker too, so calls go elsewhere until the next window.
        """
        with replica.lock:
            if replica.stopped:
                return False
            if replica.engine.healthy():
                return True
            if not replica.restarts.allow():
                return False
            replica.restarts_done += 1
            replica.restarting = True
            replica.engine.stop()
            try:
                replica.engine.start(self.start_timeout_s)
            except Exception as e:
                replica.restarting = False
                why = f"engine died and did not restart: {str(e).splitlines()[0][:300] if str(e) else type(e).__name__}"
                replica.restarts.failure(why)
                replica.breaker.trip(why)
                return False
            replica.restarts.success()
            replica.breaker.success()
            replica.meter = _meter_for(replica.engine)
            replica.restarting = False
            return True

    def recover_in_background(self, replica: Replica) -> None:
        """`recover` on a worker thread (one at a time per replica), for callers that can go elsewhere."""
        with self._guard:
            if replica in self._background or replica.stopped:
                return
            self._background.add(replica)

        def run() -> None:
            try:
                self.recover(replica)
            except Exception:  # recover records failures in the breakers; nothing to raise to
                pass
            finally:
                with self._guard:
                    self._background.discard(replica)

        threading.Thread(target=run, name=f"murakkab-restart-{replica.deployment.name}", daemon=True).start()

    def restart(self, replica: Replica) -> None:
        """Restart now if dead (cooled down like `recover`), raising when the engine stays down."""
        if not self.recover(replica):
            raise EngineUnavailableError(
                f"deployment {replica.deployment.name!r} replica {replica.index}: {replica.restarts.describe()}")

    def drain(self, name: str, timeout_s: float = 60.0) -> bool:
        """Send `name` no new calls and wait for its calls in flight (engines that can drain do)."""
        import time

        deadline = time.monotonic() + timeout_s
        replicas = self._replicas.get(name, [])
        for r in replicas:
            r.draining = True
        ok = True
        for r in replicas:
            drain = getattr(r.engine, "drain", None)
            if drain is not None:
                ok = drain(max(0.0, deadline - time.monotonic())) and ok
        while any(r.inflight for r in replicas) and time.monotonic() < deadline:
            time.sleep(0.02)
        return ok and not any(r.inflight for r in replicas)

    def stop(self, name: str) -> None:
        for r in self._replicas.pop(name, []):
            r.stopped = True
            with r.lock:  # waits for a restart under way, so what it started is stopped too
                r.engine.stop()

    def stop_all(self) -> None:
        for name in list(self._replicas):
            self.stop(name)
