"""The adaptive runtime's per-call decision, driven by simulated telemetry: the same code, not a copy.

`runtime/control.py` holds the runtime's adaptive decisions as pure functions. The simulator calls
its router, `choose(node_routes(...)[node], service, inflight, available)`, for every simulated
call, with what the runtime would observe: calls in flight per deployment and the recent per-call
service time (admission to completion, queueing excluded, forgotten after `fresh_s`), read from
the simulated replicas (`simulator.LiveView`). The plan's alternatives (`NodeChoice.alternatives`)
stay warm with one replica each, as `AdaptiveConfig.warm_alternatives` says the runtime does.

Not driven here: the controller's re-planning loop (`drift`, `step`, `with_observed`, `swap`).
It reacts to observed token counts, calls per run and arrival rates that differ from the
annotations; a simulated workload draws exactly the annotated figures, so there is nothing for
it to notice until the simulator also varies the workload (a seam for later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from murakkab_lg.runtime.control import AdaptiveConfig, choose, node_routes
from murakkab_lg.sim.simulator import Chooser, LiveView, SimDeployment
from murakkab_lg.sim.workload import SimNode
from murakkab_lg.spec import Plan, Workflow

__all__ = ("adaptive_chooser", "warm_alternatives")


def warm_alternatives(plan: Plan, cfg: AdaptiveConfig) -> list[str]:
    """Deployments started with the plan besides its choices: each node's first alternatives."""
    chosen = {c.deployment for c in plan.choices}
    out: list[str] = []
    for c in plan.choices:
        for alt in c.alternatives[: cfg.warm_alternatives]:
            if alt.deployment not in chosen and alt.deployment not in out:
                out.append(alt.deployment)
    return out


def adaptive_chooser(plan: Plan, workflow: Workflow, fleet: Mapping[str, SimDeployment],
                     cfg: AdaptiveConfig | None = None) -> Chooser:
    """A per-call chooser that routes with `runtime.control.choose` over the simulated fleet."""
    cfg = cfg or AdaptiveConfig()
    slots = {name: d.rates.max_seqs * d.replicas for name, d in fleet.items()}  # as control.slots_of counts them
    routes = {node: replace(r, alternatives=tuple(a for a in r.alternatives if a.deployment in fleet))
              for node, r in node_routes(plan, workflow, slots).items()}  # spill only to what runs

    def pick(node: SimNode, view: LiveView) -> str:
        return choose(routes[node.name], view.service, view.inflight, view.available)

    return pick
