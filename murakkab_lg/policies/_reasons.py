"""Why each node got its deployment and why the others lost: the rejected alternatives.

A per-node policy can say "worse on energy"; a joint plan also rejects alternatives that are
*better* for the node alone, because taking them would break something shared. For each such
alternative this module tries the swap (node -> alternative, everything else fixed) and names
what breaks: the workflow's end-to-end SLO on the path through the node, or the inventory's
memory. Alternatives are ranked by their objective value and the best few kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from murakkab_lg.policies._capacity import Need
from murakkab_lg.policies._tables import Tables
from murakkab_lg.policies.base import check
from murakkab_lg.spec import Objective, Prediction, Rejection

__all__ = ("SwapContext", "prediction", "rejections")


@dataclass
class SwapContext:
    """What the swap test needs about the solved plan."""

    objective: Objective
    level: dict[int, int]  # deployment -> chosen level (unused: 0)
    used: set[int]
    through: np.ndarray  # per global node: longest path through it, minus its own latency
    slo: list[float | None]  # per workflow
    needs: list[Need] | None
    free_gb: list[float] | None  # per device, after the plan's deployments


def prediction(t: Tables, n: int, d: int, lvl: int) -> Prediction:
    q = t.quality[n, d]
    return Prediction(quality=None if np.isnan(q) else float(q), latency_s=float(t.lat[d][lvl][n]),
                      energy_j=float(t.energy[d][lvl][n]), cost_usd=float(t.cost[d][lvl][n]))


def _value(p: Prediction, objective: Objective) -> float:
    if objective is Objective.LATENCY:
        return p.latency_s
    return p.energy_j if objective is Objective.ENERGY else p.cost_usd


def _fits(need: Need, free_gb: list[float]) -> bool:
    return sum(1 for dev, m in need.memory_gb.items() if m <= free_gb[dev] + 1e-9) >= need.slots


def rejections(t: Tables, n: int, chosen: int, ctx: SwapContext, limit: int | None) -> tuple[Rejection, ...]:
    node = t.refs[n].node
    wf = t.refs[n].wf
    mine = prediction(t, n, chosen, ctx.level.get(chosen, 0))
    unit = {"energy": "J", "latency": "s", "cost": "USD"}[ctx.objective.value]
    out: list[tuple[float, Rejection]] = []
    table = {ctx.objective.LATENCY: t.lat, ctx.objective.ENERGY: t.energy}.get(ctx.objective, t.cost)
    values = np.array([table[d][ctx.level.get(d, 0)][n] for d in range(len(t.candidates))])
    values[chosen] = np.inf
    order = np.lexsort((np.arange(len(values)), values))[: len(values) - 1]
    if limit is not None:
        order = order[:limit]
    for d in order.tolist():
        cand = t.candidates[d]
        pred = prediction(t, n, d, ctx.level.get(d, 0))
        val = _value(pred, ctx.objective)
        why = check(node, cand.name, pred)
        if why is None and ctx.needs is not None and not ctx.needs[d].placeable:
            why = Rejection(deployment=cand.name, reason="capacity", prediction=pred, detail=ctx.needs[d].why_not)
        if why is None and val < _value(mine, ctx.objective):
            slo = ctx.slo[wf]
            path = ctx.through[n] + pred.latency_s
            if slo is not None and path > slo * (1 + 1e-9):
                why = Rejection(deployment=cand.name, reason="latency SLO", prediction=pred,
                                detail=f"end-to-end: the path through this node would take {path:.2f} s "
                                       f"> workflow latency_slo_s {slo:g}")
            elif (ctx.needs is not None and ctx.free_gb is not None and d not in ctx.used
                  and not _fits(ctx.needs[d], ctx.free_gb)):
                why = Rejection(deployment=cand.name, reason="capacity", prediction=pred,
                                detail="no room left on the inventory beside the plan's other deployments")
            else:
                why = Rejection(deployment=cand.name, reason="objective", prediction=pred,
                                detail=f"better for this node alone ({val:.3g} {unit}) but not in the joint "
                                       "optimum (shared load or co-location)")
        if why is None:
            delta = val - _value(mine, ctx.objective)
            why = Rejection(deployment=cand.name, reason="objective", prediction=pred,
                            detail=f"feasible but {ctx.objective.value} {val:.3g} {unit} (+{delta:.3g})")
        out.append((val, why))
    return tuple(r for _, r in out)
