"""`Runtime.status()`: what runs, how loaded it is and how it behaves now, as one pydantic value.

The same value is returned by the library, served as JSON by `GET /v1/murakkab/status`, turned
into Prometheus gauges by the server and printed by `murakkab status --url`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from murakkab_lg.runtime import control
from murakkab_lg.runtime.control import AdaptiveConfig, ReplanEvent
from murakkab_lg.runtime.live import DeploymentStats, Frozen, NodeStats, WorkflowStats

if TYPE_CHECKING:
    from murakkab_lg.runtime.runtime import Runtime

__all__ = ("DeploymentStatus", "ReplicaStatus", "RuntimeStatus", "WorkflowStatus", "build_status")


class ReplicaStatus(Frozen):
    index: int
    inflight: int
    queued: int  # calls past the replica's engine slots: waiting inside the engine
    failures: int  # consecutive failed calls (the circuit breaker's count)
    breaker: str = "closed"  # closed | open | half_open (runtime/breaker.py)
    restarts: int = 0  # restarts attempted; a failing one is cooled down, not retried per call
    draining: bool = False


class DeploymentStatus(Frozen):
    deployment: str
    model: str
    engine: str
    running: bool
    slots: int | None  # calls served at once over all replicas; None: the engine does not say
    replicas: tuple[ReplicaStatus, ...]
    inflight: int
    queued: int
    window: DeploymentStats | None  # None: no call in the window


class WorkflowStatus(Frozen):
    workflow: str
    policy: str
    routes: dict[str, str]  # node -> planned deployment
    observed: WorkflowStats | None
    assumed_arrival_rate_per_s: float | None
    drift: tuple[str, ...]  # why the plan's assumptions no longer hold; empty: they hold
    replans: int


class RuntimeStatus(Frozen):
    at: float  # wall clock
    window_s: float
    adaptive: AdaptiveConfig | None  # None: fixed plans
    deployments: dict[str, DeploymentStatus]
    nodes: tuple[NodeStats, ...]
    workflows: dict[str, WorkflowStatus]
    replans: tuple[ReplanEvent, ...]


def build_status(rt: Runtime) -> RuntimeStatus:
    snap = rt.live.snapshot()
    cfg = rt.adaptive or AdaptiveConfig()
    deps = {}
    for name, d in rt.deployments.items():
        slots = control.slots_of(d)
        per = slots // d.replicas if slots is not None else None
        reps = tuple(ReplicaStatus(index=i, inflight=r.inflight, failures=r.breaker.failures,
                                   breaker=r.breaker.state.value, restarts=r.restarts_done, draining=r.draining,
                                   queued=max(0, r.inflight - per) if per is not None else 0)
                     for i, r in enumerate(rt._pool.replicas(name)))
        deps[name] = DeploymentStatus(
            deployment=name, model=d.model, engine=d.engine.label(), running=bool(reps), slots=slots,
            replicas=reps, inflight=sum(r.inflight for r in reps), queued=sum(r.queued for r in reps),
            window=snap.deployments.get(name))
    replans = tuple(rt.replans)
    wfs = {}
    for name, plan in list(rt.plans.items()):
        workflow = rt.workflows.get(name)
        reasons = tuple(control.drift(plan, workflow, snap, cfg)) if workflow is not None else ()
        wfs[name] = WorkflowStatus(
            workflow=name, policy=plan.policy, routes={c.node: c.deployment for c in plan.choices},
            observed=snap.workflows.get(name),
            assumed_arrival_rate_per_s=workflow.arrival_rate_per_s if workflow is not None else None,
            drift=reasons, replans=sum(1 for e in replans if e.workflow == name))
    return RuntimeStatus(at=time.time(), window_s=snap.window_s, adaptive=rt.adaptive, deployments=deps,
                         nodes=snap.nodes, workflows=wfs, replans=replans)
