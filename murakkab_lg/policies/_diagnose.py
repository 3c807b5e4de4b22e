"""Why a planning problem has no solution, said so a user knows what to relax and by how much.

Checked cheapest first: a node no deployment can serve (its own quality floor, latency SLO,
energy or cost budget, or no room for any deployment that would), then a workflow whose
critical path is too slow even on the fastest feasible deployment of every node; only then a
joint cause (capacity or load), found by re-solving without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.policies._capacity import Need
from murakkab_lg.policies._graph import Dag
from murakkab_lg.policies._model import Options
from murakkab_lg.policies._tables import Tables
from murakkab_lg.policies.base import Candidate, check, evaluate, infeasible
from murakkab_lg.spec import Inventory, Rejection, Workflow, WorkflowNode

__all__ = ("capacity_error", "critical_path_error", "node_error", "slo_check")

_STAGE = {"quality floor": 0, "latency SLO": 1, "energy budget": 2, "cost budget": 3}


def node_error(node: WorkflowNode, candidates: Sequence[Candidate], needs: list[Need] | None) -> PlanInfeasibleError:
    """The binding constraint of a node with no option, and the best value the fleet offers for it."""
    rejected: list[Rejection] = []
    fits_alone: list[Candidate] = []
    for cand in candidates:
        why = check(node, cand.name, evaluate(node, cand))
        if why is None:
            fits_alone.append(cand)
        else:
            rejected.append(why)
    if fits_alone and needs is not None:
        index = {c.name: i for i, c in enumerate(candidates)}
        whys = "; ".join(needs[index[c.name]].why_not for c in fits_alone[:3])
        return PlanInfeasibleError(
            f"node {node.name!r}: every deployment that meets its constraints cannot be placed on the "
            f"inventory: {whys}. To fix: add a device with more memory, or add a smaller model.",
            node=node.name, constraint="capacity", best=None,
        )
    # the candidate that got furthest through the checks names the binding constraint
    rejected.sort(key=lambda r: -_STAGE.get(r.reason, 0))
    return infeasible(node, rejected)


def _fmt_path(path: Sequence[str]) -> str:
    return " -> ".join(path)


def critical_path_error(wf: Workflow, dag: Dag, best: Sequence[float], fastest: Sequence[str]) -> PlanInfeasibleError:
    path, total = dag.critical_path(best)
    index = {n: i for i, n in enumerate(dag.names)}
    parts = ", ".join(f"{n} {best[index[n]]:.2f} s on {fastest[index[n]]}" for n in path)
    return PlanInfeasibleError(
        f"workflow {wf.name!r}: latency_slo_s {wf.latency_slo_s:g} but its critical path "
        f"{_fmt_path(path)} takes at least {total:.2f} s on the fastest deployment each node can use "
        f"({parts}). To fix: relax latency_slo_s to >= {total:.2f}, lower the path's expected tokens or "
        "iterations, relax the quality floors on it, or add faster hardware.",
        node=path[-1] if path else None, constraint="latency_slo_s", best=total,
    )


def slo_check(t: Tables, opt: Options, workflows: Sequence[Workflow], dags: Sequence[Dag]) -> None:
    """Raise if some workflow's SLO is below its fastest possible critical path (a lower bound)."""
    if not len(opt.n):
        return
    best = np.full(t.n_nodes, np.inf)
    np.minimum.at(best, opt.n, opt.lat)
    fastest = [""] * t.n_nodes
    for o in np.argsort(-opt.lat):  # the last write per node is its fastest option
        fastest[opt.n[o]] = t.candidates[opt.d[o]].name
    start = 0
    for wf, dag in zip(workflows, dags, strict=True):
        m = len(wf.nodes)
        if wf.latency_slo_s is not None:
            b = best[start:start + m].tolist()
            if dag.makespan(b) > wf.latency_slo_s * (1 + 1e-9):
                raise critical_path_error(wf, dag, b, fastest[start:start + m])
        start += m


def capacity_error(workflows: Sequence[Workflow], inventory: Inventory, uncapped: Sequence[str],
                   candidates: Sequence[Candidate], needs: list[Need], load: bool) -> PlanInfeasibleError:
    """Every node and SLO can be met, but not together on this inventory (or under this load)."""
    names = ", ".join(repr(w.name) for w in workflows)
    devs = ", ".join(f"{d.id} ({d.kind}, {d.memory_gb:g} GB)" for d in inventory.devices)
    index = {c.name: i for i, c in enumerate(candidates)}
    want = ", ".join(
        f"{n} ({needs[index[n]].slots} x {max(needs[index[n]].memory_gb.values(), default=0.0):.1f} GB)"
        for n in uncapped
    )
    total = sum(needs[index[n]].slots * max(needs[index[n]].memory_gb.values(), default=0.0) for n in uncapped)
    what = "memory and compute under the stated arrival rate" if load else "memory"
    return PlanInfeasibleError(
        f"workflows {names}: no assignment fits the inventory's {what} while meeting every constraint. "
        f"Inventory: {devs}. Without the capacity limits the plan would run {want or 'nothing'} "
        f"(about {total:.1f} GB). To fix: add or free devices, lower arrival_rate_per_s, add replicas, "
        "or relax the quality floors and SLOs that force large models.",
        node=None, constraint="capacity", best=total,
    )
