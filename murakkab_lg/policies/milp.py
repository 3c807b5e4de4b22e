"""`milp`: the joint plan for one or several workflows, solved exactly with HiGHS.

Where `greedy` picks per node, this policy picks every node's deployment at once, so it can
trade a node's cost against the end-to-end SLO on the critical path, and it sees deployments
shared between nodes (and workflows) and the devices they must fit on together.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.policies._capacity import Need, needs
from murakkab_lg.policies._diagnose import capacity_error, node_error, slo_check
from murakkab_lg.policies._graph import Dag, dag_of
from murakkab_lg.policies._model import Formulation, Options, formulate, options, reduce_by_slo
from murakkab_lg.policies._reasons import SwapContext, prediction, rejections
from murakkab_lg.policies._tables import Tables, build_tables
from murakkab_lg.policies.base import Candidate, PlanningProblem
from murakkab_lg.policies.gpu_memory import is_gpu, shares, usable_gb
from murakkab_lg.spec import Deployment, Inventory, NodeChoice, Objective, Placement, Plan, VllmSettings, Workflow

__all__ = ("MilpPolicy", "plan_many")


@dataclass(frozen=True)
class MilpPolicy:
    """Joint assignment of nodes to deployments as a mixed-integer linear program.

    Model (one solve covers every workflow given to `plan_many`; `plan` is the one-workflow case):

    * variables: ``x[n,d,l]`` binary, node n runs on deployment d at operating level l (without an
      arrival rate there is one level, concurrency 1, and x is the classic ``x[n,d]``);
      ``y[d]`` binary, deployment d runs (only with an inventory); ``s[d,l]`` binary, d runs at
      level l (only with an arrival rate); ``z[d,g]`` binary, a slot of d sits on device g;
      continuous finish times ``f[n]``, node latencies ``l[n]`` and makespans ``T[w]``.
    * objective (`Objective` enum): ENERGY ``sum energy[n,d,l] x``; COST ``sum cost x``;
      LATENCY ``sum_w T[w]``. For LATENCY and COST a second solve keeps the optimum and
      minimises energy, so ties are not broken arbitrarily.
    * one deployment per node: ``sum_{d,l} x[n,d,l] = 1``; ``x <= y[d]`` (or ``x <= s[d,l]``,
      ``sum_l s[d,l] = y[d]``).
    * per-node quality floor, latency SLO, energy and cost budgets: by pre-filtering, an option
      that breaks one never becomes a variable; without inventory or load, options weakly
      dominated in (energy, latency, cost) for their node are dropped too (exact).
    * end-to-end SLO on every source->sink path, without enumerating paths: longest-path
      potentials ``f[v] >= f[u] + l[v]`` for every edge, ``f[v] >= l[v]``, ``T[w] >= f[sink]``,
      ``T[w] <= latency_slo_s`` of workflow w (per-workflow SLOs when several are planned).
    * load (with ``arrival_rate_per_s``): by Little's law a deployment's concurrency is
      ``L[d] = sum rate * fanout * latency``; level l (the profile's measured concurrencies) is
      the lowest that carries it: ``L <= replicas * c_l`` and ``L(at c_{l-1}) >= replicas * c_{l-1}``.
      Latency and energy of every node on d are predicted at that concurrency (`profile.at`).
    * capacity (with an inventory): ``sum_g z[d,g] = slots[d] * y[d]``; per device
      ``sum_d mem[d,g] z[d,g] <= usable_gb[g]`` (co-located deployments add up; `mem` and
      `usable_gb` are the GPU memory model of `policies/gpu_memory.py`, which the runtime's
      packer shares, and a placed vLLM deployment's `gpu_memory_utilization` is its `shares`
      value there); under load,
      ``sum_d units[d] * L[d] / (replicas * c_max) <= compute_units[g]`` over the deployments
      on g (linearised with one continuous variable per deployment and device).

    `scipy.optimize.milp` (HiGHS) is imported inside the solve, so importing this module is light.
    """

    name: str = "milp"
    time_limit_s: float = 30.0
    # HiGHS's own default: a plan within 0.01% of the optimum objective. Closing the last 0.01%
    # on a 500-node DAG with a binding SLO costs HiGHS seconds of heuristics for no useful gain;
    # pass 1e-7 for a proven optimum (the brute-force tests do).
    mip_rel_gap: float = 1e-4
    max_rejected: int | None = 6  # alternatives kept per node in the explanation; None: all

    def plan(self, problem: PlanningProblem) -> Plan:
        return plan_many([problem.workflow], problem.candidates, problem.inventory, problem.objective,
                         policy=self, profile_source=problem.profile_source)[0]


def plan_many(workflows: Sequence[Workflow | PlanningProblem], candidates: Sequence[Candidate] | None = None,
              inventory: Inventory | None = None, objective: Objective | None = None, *,
              policy: MilpPolicy | None = None, profile_source: str = "") -> list[Plan]:
    """One plan per workflow, solved jointly: deployments are shared, capacity is counted once.

    Each workflow keeps its own SLO and arrival rate; `objective` is summed over the workflows
    (it defaults to the first problem's, else ENERGY). `PlanningProblem`s may be passed instead
    of workflows; their candidates, inventory and objective fill what is not given.
    """
    pol = policy or MilpPolicy()
    problems = [w for w in workflows if isinstance(w, PlanningProblem)]
    wfs = [w.workflow if isinstance(w, PlanningProblem) else w for w in workflows]
    if problems:
        candidates = candidates if candidates is not None else problems[0].candidates
        inventory = inventory if inventory is not None else problems[0].inventory
        objective = objective if objective is not None else problems[0].objective
        profile_source = profile_source or problems[0].profile_source
    if not candidates:
        raise ConfigError("no candidate deployments to plan with. To fix: add models to the catalog.")
    if len({w.name for w in wfs}) != len(wfs):
        raise ConfigError("plan_many: workflow names must be distinct (plans are keyed by them)")
    objective = objective or Objective.ENERGY
    cands = tuple(candidates)
    dags = [dag_of(w) for w in wfs]
    load = any(w.arrival_rate_per_s for w in wfs)
    t = build_tables(wfs, cands, with_levels=load)
    need = needs(cands, inventory)
    opt = options(t, need, prune=need is None and not load)
    covered = np.zeros(t.n_nodes, dtype=bool)
    covered[opt.n] = True
    for n in np.flatnonzero(~covered):
        raise node_error(t.refs[n].node, cands, need)
    slo_check(t, opt, wfs, dags)
    if need is None and not load:
        opt = reduce_by_slo(opt, t.n_nodes, wfs, dags, objective)
    x = _solve(t, opt, wfs, dags, need, inventory, objective, pol)
    if x is None:
        if need is not None and inventory is not None:
            free = _solve(t, options(t, None, prune=False), wfs, dags, None, None, objective, pol)
            if free is not None:
                f0, o0, s0 = free
                uncapped = sorted({cands[int(o0.d[o])].name for o in _picked(o0, f0, s0).values()})
                raise capacity_error(wfs, inventory, uncapped, cands, need, load)
        raise PlanInfeasibleError(
            f"workflows {', '.join(repr(w.name) for w in wfs)}: every node and SLO can be met alone but "
            "not together under the stated arrival rate. To fix: lower arrival_rate_per_s, add replicas, "
            "or relax the SLOs.", constraint="load",
        )
    return _plans(t, *x, wfs, dags, need, inventory, objective, pol, profile_source)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """scipy's bundled HiGHS prints stray debug lines to fd 1 on some hard MIPs; send fd 1 to
    stderr while it runs, so `murakkab plan --json -` keeps a clean stdout. Nothing is lost."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _solve(t: Tables, opt: Options, wfs: Sequence[Workflow], dags: Sequence[Dag], need: list[Need] | None,
           inventory: Inventory | None, objective: Objective, pol: MilpPolicy
           ) -> tuple[Formulation, Options, np.ndarray] | None:
    """Solve (and for LATENCY/COST re-solve for least energy at the optimum); None if infeasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    f = formulate(t, opt, wfs, dags, need, inventory, objective)
    opts = {"time_limit": pol.time_limit_s, "mip_rel_gap": pol.mip_rel_gap, "disp": False}

    def run(c: np.ndarray, extra: tuple[np.ndarray, float] | None) -> np.ndarray | None:
        rows, cols, vals = f.rows, f.cols, f.vals
        lb, ub = f.row_lb, f.row_ub
        if extra is not None:
            nz = np.flatnonzero(extra[0])
            r = len(lb)
            rows, cols, vals = [*rows, *[r] * len(nz)], [*cols, *nz.tolist()], [*vals, *extra[0][nz].tolist()]
            lb, ub = [*lb, -np.inf], [*ub, extra[1]]
        a = csr_array((vals, (rows, cols)), shape=(len(lb), f.n_cols))
        with _stdout_to_stderr():
            res = milp(c, integrality=np.array(f.integer), bounds=Bounds(f.lo, f.hi),
                       constraints=LinearConstraint(a, lb, ub), options=opts)
        if res.x is None:
            if res.status == 1:
                raise PlanInfeasibleError(
                    f"milp: no plan found within time_limit_s={pol.time_limit_s:g}. To fix: raise "
                    "MilpPolicy(time_limit_s=...), or plan with policy 'greedy'.", constraint="time_limit")
            return None
        return res.x

    c = np.array(f.c)
    sol = run(c, None)
    if sol is None:
        return None
    if objective is not Objective.ENERGY:
        best = float(c @ sol)
        energy = np.zeros(f.n_cols)
        energy[f.blocks["w"]["cols"]] = opt.energy
        again = run(energy, (c, best + 1e-9 * max(1.0, abs(best))))
        sol = again if again is not None else sol
    return f, opt, sol


def _picked(opt: Options, f: Formulation, sol: np.ndarray) -> dict[int, int]:
    """node -> chosen option index."""
    on = np.flatnonzero(sol[f.blocks["w"]["cols"]] > 0.5)
    return {int(opt.n[o]): int(o) for o in on}


def _placements(f: Formulation, sol: np.ndarray, need: list[Need] | None, inventory: Inventory | None,
                cands: Sequence[Candidate]) -> dict[int, list[int]]:
    """deployment -> device indices it was placed on."""
    out: dict[int, list[int]] = {}
    for (d, dev), col in f.blocks.get("z", {}).items():
        if sol[col] > 0.5:
            out.setdefault(d, []).append(dev)
    if need is not None:
        for d, col in f.blocks["y"].items():
            if sol[col] > 0.5 and need[d].pinned:
                out[d] = list(need[d].pinned)
    return out


def _utilization(where: dict[int, list[int]], need: list[Need], inventory: Inventory,
                 cands: Sequence[Candidate]) -> dict[int, float]:
    """deployment -> the `gpu_memory_utilization` its vLLM engine is told (the packer's `shares`)."""
    residents: dict[int, list[int]] = {}
    for d, devs in where.items():
        for dev in devs:
            if is_gpu(inventory.devices[dev]):
                residents.setdefault(dev, []).append(d)
    out: dict[int, float] = {}
    for dev, ds in residents.items():
        got = shares(inventory.devices[dev], [need[d].memory_gb[dev] for d in ds])
        for d, u in zip(ds, got, strict=True):
            if isinstance(cands[d].deployment.engine, VllmSettings):
                out[d] = min(out.get(d, 1.0), u)
    return out


def _placed(dep: Deployment, devs: list[int], inventory: Inventory, utilization: float | None) -> Deployment:
    chosen = [inventory.devices[i] for i in sorted(devs)]
    if all(d.kind.lower() == "cpu" for d in chosen):
        return dep
    gpus = tuple(d.gpu_index for d in chosen if d.gpu_index is not None)
    mig = tuple(d.uuid for d in chosen if "/" in d.id and d.uuid)
    if utilization is not None and isinstance(dep.engine, VllmSettings):
        dep = dep.model_copy(update={"engine": dep.engine.model_copy(update={"gpu_memory_utilization": utilization})})
    return dep.model_copy(update={"placement": Placement(
        device=chosen[0].kind, gpus=gpus if len(gpus) == len(chosen) else dep.placement.gpus,
        host=chosen[0].host, cuda_visible_devices=mig if len(mig) == len(chosen) else ())})


def _plans(t: Tables, f: Formulation, opt: Options, sol: np.ndarray, wfs: Sequence[Workflow], dags: Sequence[Dag],
           need: list[Need] | None, inventory: Inventory | None, objective: Objective, pol: MilpPolicy,
           profile_source: str) -> list[Plan]:
    pick = _picked(opt, f, sol)
    node_dep = {n: int(opt.d[o]) for n, o in pick.items()}
    level = {int(opt.d[o]): int(opt.lvl[o]) for o in pick.values()}
    used = set(node_dep.values())
    # a deployment no node uses may still have y = 1 (nothing in the objective forbids it): drop it
    where = {d: devs for d, devs in _placements(f, sol, need, inventory, t.candidates).items() if d in used}
    free: list[float] | None = None
    if inventory is not None and need is not None:
        free = [usable_gb(d) for d in inventory.devices]
        for d, devs in where.items():
            for dev in devs:
                free[dev] -= need[d].memory_gb[dev]
    lat = np.array([opt.lat[pick[n]] for n in range(t.n_nodes)])
    through = np.zeros(t.n_nodes)
    offsets = np.cumsum([0] + [len(w.nodes) for w in wfs])
    critical: dict[int, tuple[list[str], float]] = {}
    for k, dag in enumerate(dags):
        lo, hi = offsets[k], offsets[k + 1]
        lk = lat[lo:hi].tolist()
        through[lo:hi] = np.array(dag.finish_times(lk)) + np.array(dag.tail_times(lk)) - 2 * lat[lo:hi]
        critical[k] = dag.critical_path(lk)
    ctx = SwapContext(objective=objective, level=level, used=used, through=through,
                      slo=[w.latency_slo_s for w in wfs], needs=need, free_gb=free)
    sharers: dict[int, list[str]] = {}
    for n, d in node_dep.items():
        r = t.refs[n]
        sharers.setdefault(d, []).append(r.node.name if len(wfs) == 1 else f"{wfs[r.wf].name}/{r.node.name}")
    n_feasible = np.zeros(t.n_nodes, dtype=int)  # before pruning: what the node could use alone
    for d in range(len(t.candidates)):
        if need is None or need[d].placeable:
            n_feasible += np.logical_or.reduce(t.feasible[d])
    util = _utilization(where, need, inventory, t.candidates) if need is not None and inventory else {}
    deployments = {}
    for d in used:
        dep = t.candidates[d].deployment
        deployments[d] = _placed(dep, where[d], inventory, util.get(d)) if (d in where and inventory) else dep
    plans = []
    for k, wf in enumerate(wfs):
        path, span = critical[k]
        choices = []
        for n in range(offsets[k], offsets[k + 1]):
            d = node_dep[n]
            name = t.refs[n].node.name
            label = name if len(wfs) == 1 else f"{wf.name}/{name}"
            bits = [f"joint {objective.value} optimum; {n_feasible[n]} of {len(t.candidates)} deployments "
                    "meet its constraints alone"]
            if name in path and (wf.latency_slo_s is not None or objective is Objective.LATENCY):
                slo = f" of SLO {wf.latency_slo_s:g} s" if wf.latency_slo_s is not None else ""
                bits.append(f"on the critical path ({span:.2f} s{slo})")
            others = [s for s in sharers[d] if s != label]
            if others:
                bits.append(f"shares the deployment with {', '.join(others[:4])}")
            if len(t.levels[d]) > 1:
                bits.append(f"at concurrency {t.levels[d][level[d]]:g}")
            if d in where and inventory is not None:
                bits.append("on " + "+".join(inventory.devices[i].id for i in sorted(where[d])))
            choices.append(NodeChoice(
                node=name, intent=t.refs[n].node.intent.intent, deployment=t.candidates[d].name,
                prediction=prediction(t, n, d, level[d]), reason="; ".join(bits),
                rejected=rejections(t, n, d, ctx, pol.max_rejected),
            ))
        mine = sorted({node_dep[n] for n in range(offsets[k], offsets[k + 1])})
        plans.append(Plan(workflow=wf.name, policy=pol.name, objective=objective, choices=tuple(choices),
                          deployments=tuple(deployments[d] for d in mine), profile_source=profile_source))
    return plans
