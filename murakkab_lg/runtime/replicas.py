"""Running deployments: start once, share across nodes and workflows, pick a replica, stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from murakkab_lg.backends.engines import EngineAdapter, create_engine
from murakkab_lg.backends.telemetry.energy import GpuEnergyMeter, shared_attributor
from murakkab_lg.catalog.hardware import watts_per_core
from murakkab_lg.errors import EngineUnavailableError
from murakkab_lg.runtime.telemetry import CpuEnergyMeter
from murakkab_lg.spec import Deployment

__all__ = ("Replica", "ReplicaPool")

EngineFactory = Callable[[Deployment, int], EngineAdapter]


def _meter_for(engine: EngineAdapter) -> CpuEnergyMeter | GpuEnergyMeter:
    """The engine's own meter where it has one (a Ray replica reads NVML on its node), else measured
    energy from this host's GPU counters for an engine placed on GPUs (when NVML works), else CPU
    time x watts per core, estimated."""
    own = getattr(engine, "energy_meter", None)
    meter = own() if callable(own) else None
    if meter is not None:
        return meter
    gpus = getattr(engine, "gpus", ())
    if gpus:
        attributor = shared_attributor()
        if attributor is not None:
            return attributor.meter(gpus)
    return CpuEnergyMeter(engine.cpu_seconds, watts_per_core())


@dataclass(eq=False)
class Replica:
    deployment: Deployment
    engine: EngineAdapter
    meter: CpuEnergyMeter | GpuEnergyMeter
    inflight: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReplicaPool:
    """Deployment name -> started replicas. Starting is idempotent and serialised per deployment."""

    def __init__(self, factory: EngineFactory = create_engine, start_timeout_s: float = 180.0) -> None:
        self._factory = factory
        self.start_timeout_s = start_timeout_s
        self._replicas: dict[str, list[Replica]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def running(self) -> list[str]:
        return [name for name, rs in self._replicas.items() if rs]

    def is_running(self, name: str) -> bool:
        return bool(self._replicas.get(name))

    def replicas(self, name: str) -> list[Replica]:
        """The started replicas of `name` (empty when stopped); never starts anything."""
        return self._replicas.get(name) or []

    def ensure(self, deployment: Deployment) -> list[Replica]:
        replicas = self._replicas.get(deployment.name)
        if replicas:
            return replicas
        with self._guard:
            lock = self._locks.setdefault(deployment.name, threading.Lock())
        with lock:
            replicas = self._replicas.get(deployment.name)
            if replicas:
                return replicas
            started: list[Replica] = []
            try:
                for i in range(deployment.replicas):
                    engine = self._factory(deployment, i)
                    engine.start(self.start_timeout_s)
                    started.append(Replica(deployment, engine, _meter_for(engine)))
            except BaseException:
                for r in started:
                    r.engine.stop()
                raise
            self._replicas[deployment.name] = started
            return started

    def pick(self, deployment: Deployment) -> Replica:
        """The healthy-looking replica with the fewest requests in flight."""
        replicas = self.ensure(deployment)
        live = [r for r in replicas if r.failures == 0] or replicas
        return min(live, key=lambda r: r.inflight)

    def restart(self, replica: Replica) -> None:
        """Replace a replica whose engine died (called after a transport failure)."""
        with replica.lock:
            if replica.engine.healthy():
                return
            replica.engine.stop()
            try:
                replica.engine.start(self.start_timeout_s)
            except Exception as e:
                replica.failures += 1
                raise EngineUnavailableError(
                    f"deployment {replica.deployment.name!r}: engine died and did not restart: {e}"
                ) from e
            replica.failures = 0
            replica.meter = _meter_for(replica.engine)

    def stop(self, name: str) -> None:
        for r in self._replicas.pop(name, []):
            r.engine.stop()

    def stop_all(self) -> None:
        for name in list(self._replicas):
            self.stop(name)
