"""RayEngine: an engine replica that runs as a Ray actor in its own placement group.

Behind the same EngineAdapter seam as every engine: `start` reserves the replica's resources
(a placement group, see resources.py), creates an `EngineHost` actor in it, and waits for the
engine to report its URL; requests then go straight to that URL through HttpEngine, the client
every other engine uses, never through Ray. `healthy` asks the actor (a dead actor or node raises
RayActorError, a hung one times out) and the actor asks its engine, so the ReplicaPool's restart
(stop + start) replaces a lost replica with a new actor wherever Ray finds room.

`RayBackend` is the runtime's EngineFactory for a configured cluster: llama.cpp and vLLM replicas
become RayEngines, engines Ray does not host (api, simulated) are created as usual.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from murakkab_lg.backends.engines import EngineAdapter, HttpEngine, create_engine
from murakkab_lg.backends.ray.actor import EngineHost
from murakkab_lg.backends.ray.cluster import RayCluster
from murakkab_lg.backends.ray.config import RayConfig
from murakkab_lg.backends.ray.resources import Bundle, replica_bundle
from murakkab_lg.backends.telemetry.energy import GpuEnergyAttributor, GpuEnergyMeter
from murakkab_lg.errors import EngineStartError
from murakkab_lg.spec import Deployment, Inventory

__all__ = ("RayBackend", "RayEngine")

_ACTOR_CONCURRENCY = 4  # health and readings answer while a long start() runs
_actor_cls: Any = None


def _remote_host(ray: Any) -> Any:
    global _actor_cls
    if _actor_cls is None:
        _actor_cls = ray.remote(EngineHost)
    return _actor_cls


def _cause(e: BaseException) -> str:
    """The engine's own error from a failed actor call, without Ray's traceback wrapper."""
    cause = getattr(e, "cause", None)
    return str(cause) if cause is not None else str(e).strip().splitlines()[-1]


class RayEngine(HttpEngine):
    """One replica of `deployment` as a Ray actor; `node_id` and `node_address` say where it runs."""
    # The actor's engine is usually llama-server (see LlamaCppEngine).
    close_streamed_connections = True

    gpus: tuple[int, ...] = ()  # the runtime's NVML sees no remote GPU; energy_meter() reads them

    def __init__(self, deployment: Deployment, replica: int, cluster: RayCluster) -> None:
        super().__init__(deployment.name)
        bundle = replica_bundle(deployment, replica)
        if bundle is None:
            raise EngineStartError(f"deployment {deployment.name!r}: engine {deployment.engine.engine!r} "
                                   "does not run in a Ray actor")
        self.deployment, self.replica, self.cluster, self.bundle = deployment, replica, cluster, bundle
        self.actor: Any = None
        self.placement_group: Any = None
        self.node_id: str | None = None
        self.node_address: str | None = None
        self.actor_gpus: tuple[int, ...] = ()
        self.engine_pid: int | None = None  # the engine process on its node (for logs and tests)
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> None:
        with self._lock:
            if self.actor is not None and self._actor_healthy():
                return
            self._teardown()
            ray = self.cluster.connect()
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            pg = self.cluster.reserve(self.bundle)
            res = dict(self.bundle.resources)
            actor = _remote_host(ray).options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0),
                num_cpus=res.pop("CPU", 0.0), num_gpus=res.pop("GPU", 0.0), resources=res,
                max_concurrency=_ACTOR_CONCURRENCY, max_restarts=0,
            ).remote(self.deployment.model_dump(mode="json"), self.replica)
            try:
                info = ray.get(actor.start.remote(timeout_s), timeout=timeout_s + 60)
            except Exception as e:
                node = self.cluster.node_of(pg)
                self._kill(actor, pg)
                raise EngineStartError(
                    f"deployment {self.name!r} replica {self.replica}: its Ray actor could not start the engine"
                    f"{f' on node {node[:8]}' if node else ''}: {_cause(e)}"
                ) from None
            self.actor, self.placement_group = actor, pg
            self.node_id, self.node_address = info["node_id"], info["address"]
            self.actor_gpus, self.engine_pid = tuple(info["gpus"]), info["engine_pid"]
            self.base_url = info["url"]
            self.api_key = info.get("api_key")  # llama-server's per-replica key (see engines/llamacpp.py)
            self._close_clients()

    def stop(self) -> None:
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        actor, pg = self.actor, self.placement_group
        self.actor = self.placement_group = None
        self._close_clients()
        if actor is not None or pg is not None:
            self._kill(actor, pg, graceful=True)

    def _kill(self, actor: Any, pg: Any, *, graceful: bool = False) -> None:
        import ray

        if actor is not None:
            if graceful:  # let the engine stop cleanly; a dead actor answers at once with an error
                with contextlib.suppress(Exception):
                    ray.get(actor.stop.remote(), timeout=15)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if pg is not None:
            self.cluster.release(pg)

    # -- probes -----------------------------------------------------------------------------------
    def _ask(self, method: str, timeout_s: float | None = None) -> Any:
        """An actor method's answer; raises RayActorError (actor or node dead) or GetTimeoutError."""
        import ray

        actor = self.actor
        if actor is None:
            raise EngineStartError(f"engine {self.name!r} replica {self.replica} is not started")
        return ray.get(getattr(actor, method).remote(), timeout=timeout_s or self.cluster.config.health_timeout_s)

    def _actor_healthy(self) -> bool:
        try:
            return bool(self._ask("healthy"))
        except Exception:  # RayActorError, GetTimeoutError, a lost connection: all mean not healthy
            return False

    def healthy(self) -> bool:
        return self._actor_healthy()

    def cpu_seconds(self) -> float | None:
        try:
            return self._ask("cpu_seconds", 2.0)
        except Exception:
            return None

    def energy_meter(self) -> GpuEnergyMeter | None:
        """Measured GPU energy through NVML on the actor's node, shared with co-located replicas; None
        (the runtime then estimates from CPU time) for a CPU replica or a node without NVML."""
        if not self.actor_gpus or self.node_id is None:
            return None
        try:
            if self._ask("gpu_energy_j") is None:
                return None
        except Exception:
            return None
        return _node_attributor(self.node_id).meter_via(self, self.actor_gpus)


class _NodeReadings:
    """GpuTelemetry's energy reading for one node, taken through any live actor on that node."""

    backend = "nvml-via-ray"

    def __init__(self) -> None:
        self.engines: list[RayEngine] = []
        self._last: dict[int, float] = {}

    def energy_j(self, gpu: int) -> float:
        for engine in list(self.engines):
            with contextlib.suppress(Exception):
                readings = engine._ask("gpu_energy_j", 2.0)
                if readings and gpu in readings:
                    self._last[gpu] = float(readings[gpu])
                    return self._last[gpu]
        return self._last.get(gpu, 0.0)  # no live reader now: no delta is charged until one answers


class _NodeAttributor:
    def __init__(self) -> None:
        self.readings = _NodeReadings()
        self.attributor = GpuEnergyAttributor(self.readings)  # type: ignore[arg-type]

    def meter_via(self, engine: RayEngine, gpus: tuple[int, ...]) -> GpuEnergyMeter:
        self.readings.engines = [e for e in self.readings.engines if e.actor is not None and e is not engine]
        self.readings.engines.append(engine)
        return self.attributor.meter(gpus)


_attributors: dict[str, _NodeAttributor] = {}
_attributors_lock = threading.Lock()


def _node_attributor(node_id: str) -> _NodeAttributor:
    """One attributor per node: co-located replicas share their GPUs' counter deltas."""
    with _attributors_lock:
        return _attributors.setdefault(node_id, _NodeAttributor())


class RayBackend:
    """The EngineFactory of a runtime whose engines run on a Ray cluster."""

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()
        self.cluster = RayCluster(self.config)
        self.engines: dict[tuple[str, int], RayEngine] = {}  # the latest engine per (deployment, replica)

    def __call__(self, deployment: Deployment, replica: int) -> EngineAdapter:
        if replica_bundle(deployment, replica) is None:
            return create_engine(deployment, replica)
        engine = RayEngine(deployment, replica, self.cluster)
        self.engines[(deployment.name, replica)] = engine
        return engine

    def bundle(self, deployment: Deployment, replica: int = 0) -> Bundle | None:
        return replica_bundle(deployment, replica)

    def inventory(self) -> Inventory:
        return self.cluster.inventory()
