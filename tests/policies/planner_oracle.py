"""Brute-force oracle for the planner: the MILP's model, re-stated from its docstring (and the GPU
memory model's, `policies/gpu_memory.py`, restated here by hand, not imported) and solved by
enumerating every assignment, operating level and placement. Slow by design; only for tiny
instances. It uses `base.evaluate()` and `base.check()` (not the MILP's numpy tables), so the
tables are checked too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from murakkab_lg.policies.base import Candidate, check, evaluate
from murakkab_lg.spec import Inventory, LlamaCppSettings, Objective, Plan, Prediction, VllmSettings, Workflow

TOL = 1e-6


def _makespan(wf: Workflow, lat: dict[str, float]) -> float:
    fin: dict[str, float] = {}
    preds: dict[str, list[str]] = {n.name: [] for n in wf.nodes}
    for u, v in wf.edges:
        preds[v].append(u)
    pending = [n.name for n in wf.nodes]
    while pending:
        for name in list(pending):
            if all(p in fin for p in preds[name]):
                fin[name] = lat[name] + max((fin[p] for p in preds[name]), default=0.0)
                pending.remove(name)
    return max(fin.values(), default=0.0)


def _levels(cand: Candidate, load: bool) -> tuple[float, ...]:
    return tuple(float(p.concurrency) for p in cand.profile.load) if load else (1.0,)


def _slots_and_memory(cand: Candidate, dev) -> tuple[int, float, float] | None:
    """(slots, memory per slot on dev, compute units per slot), None if dev is not eligible."""
    dep, prof = cand.deployment, cand.profile
    if dep.engine.engine == "api":
        return 0, 0.0, 0.0
    cpu = dep.placement.device.lower() == "cpu"
    if cpu != (dev.kind.lower() == "cpu") or (not cpu and dep.placement.device.lower() not in
                                              (dev.kind.lower(), "gpu", "cuda")):
        return None
    tp = dep.engine.tensor_parallel_size if isinstance(dep.engine, VllmSettings) else 1
    shard = (prof.memory_gb or 0.0) / tp
    if cpu:
        units = float(dep.engine.threads * dep.replicas) if isinstance(dep.engine, LlamaCppSettings) else 1.0
        return 1, shard * dep.replicas, units
    if prof.memory_gb is None and isinstance(dep.engine, VllmSettings):
        shard = dep.engine.gpu_memory_utilization * dev.memory_gb  # what vLLM pre-allocates
    return dep.replicas * tp, shard, 1.0


def _placeable(used: dict[int, float], cands: Sequence[Candidate], inv: Inventory, util: dict[int, float]) -> bool:
    """Is there a placement of every used deployment (slots on distinct eligible devices) that
    fits memory and, under load, compute? `util` is L_d / (replicas * c_max) per deployment."""
    ds = sorted(used)
    choices = []
    for d in ds:
        info = [(g, _slots_and_memory(cands[d], dev)) for g, dev in enumerate(inv.devices)]
        ok = [(g, i) for g, i in info if i is not None and i[1] <= dev_mem(inv, g) + TOL]
        slots = next((i[0] for _, i in info if i is not None), 1)
        if slots == 0:
            choices.append([()])
            continue
        if len(ok) < slots:
            return False
        choices.append([tuple(c) for c in itertools.combinations(ok, slots)])
    for combo in itertools.product(*choices):
        mem = [0.0] * len(inv.devices)
        comp = [0.0] * len(inv.devices)
        for d, slots in zip(ds, combo, strict=True):
            for g, (_, m, units) in slots:
                mem[g] += m
                comp[g] += units * util.get(d, 0.0)
        if all(mem[g] <= dev_mem(inv, g) + TOL for g in range(len(mem))) and all(
                comp[g] <= inv.devices[g].compute_units + TOL for g in range(len(comp))):
            return True
    return False


def dev_mem(inv: Inventory, g: int) -> float:
    """A GPU offers 90% of its memory (vLLM's default headroom); a CPU host all of it."""
    dev = inv.devices[g]
    return dev.memory_gb if dev.kind.lower() == "cpu" else 0.9 * dev.memory_gb


def evaluate_assignment(wfs: Sequence[Workflow], cands: Sequence[Candidate], inv: Inventory | None,
                        assign: Sequence[int], level: dict[int, int], preds_at) -> tuple[bool, list[Prediction]]:
    """Feasibility of (node->deployment, deployment->level) under the model, and the predictions."""
    nodes = [(k, n) for k, wf in enumerate(wfs) for n in wf.nodes]
    load = any(w.arrival_rate_per_s for w in wfs)
    preds = [preds_at(i, d, level[d]) for i, d in enumerate(assign)]
    for (_, node), d, p in zip(nodes, assign, preds, strict=True):
        if check(node, cands[d].name, p) is not None:
            return False, preds
    util: dict[int, float] = {}
    if load:
        for d in set(assign):
            lv, reps = level[d], cands[d].deployment.replicas
            c = _levels(cands[d], True)
            members = [i for i, dd in enumerate(assign) if dd == d]

            def conc(at: int, members: list[int] = members, d: int = d) -> float:
                return sum((wfs[nodes[i][0]].arrival_rate_per_s or 0.0) * nodes[i][1].intent.expected_fanout
                           * preds_at(i, d, at).latency_s for i in members)

            if conc(lv) > reps * c[lv] + TOL:
                return False, preds
            if lv > 0 and conc(lv - 1) < reps * c[lv - 1] - TOL:
                return False, preds
            util[d] = conc(lv) / (reps * c[-1])
    elif any(lv != 0 for lv in level.values()):
        return False, preds
    start = 0
    for wf in wfs:
        if wf.latency_slo_s is not None:
            lat = {n.name: preds[start + j].latency_s for j, n in enumerate(wf.nodes)}
            if _makespan(wf, lat) > wf.latency_slo_s * (1 + TOL) + TOL:
                return False, preds
        start += len(wf.nodes)
    if inv is not None and not _placeable({d: 0.0 for d in set(assign)}, cands, inv, util):
        return False, preds
    return True, preds


def objective_of(wfs: Sequence[Workflow], preds: Sequence[Prediction], objective: Objective) -> float:
    if objective is Objective.ENERGY:
        return sum(p.energy_j for p in preds)
    if objective is Objective.COST:
        return sum(p.cost_usd for p in preds)
    total, start = 0.0, 0
    for wf in wfs:
        total += _makespan(wf, {n.name: preds[start + j].latency_s for j, n in enumerate(wf.nodes)})
        start += len(wf.nodes)
    return total


def brute_force(wfs: Sequence[Workflow], cands: Sequence[Candidate], inv: Inventory | None,
                objective: Objective) -> float | None:
    """The optimum objective value, or None when no assignment is feasible."""
    nodes = [(k, n) for k, wf in enumerate(wfs) for n in wf.nodes]
    load = any(w.arrival_rate_per_s for w in wfs)
    levels = [_levels(c, load) for c in cands]
    cache: dict[tuple[int, int, int], Prediction] = {}

    def preds_at(i: int, d: int, lv: int) -> Prediction:
        key = (i, d, lv)
        if key not in cache:
            cache[key] = evaluate(nodes[i][1], cands[d], concurrency=levels[d][lv])
        return cache[key]

    best = None
    for assign in itertools.product(range(len(cands)), repeat=len(nodes)):
        used = sorted(set(assign))
        for lvls in itertools.product(*[range(len(levels[d])) for d in used]):
            ok, preds = evaluate_assignment(wfs, cands, inv, assign, dict(zip(used, lvls, strict=True)), preds_at)
            if ok:
                v = objective_of(wfs, preds, objective)
                best = v if best is None else min(best, v)
    return best


def plan_is_feasible(plans: Sequence[Plan], wfs: Sequence[Workflow], cands: Sequence[Candidate],
                     inv: Inventory | None) -> bool:
    """Do the plans satisfy every constraint of the model? The operating level of each deployment
    is recovered from the predictions (they must all match one level of that deployment)."""
    nodes = [(k, n) for k, wf in enumerate(wfs) for n in wf.nodes]
    load = any(w.arrival_rate_per_s for w in wfs)
    index = {c.name: i for i, c in enumerate(cands)}
    assign = [index[plans[k].choice(n.name).deployment] for k, n in nodes]
    got = [plans[k].choice(n.name).prediction for k, n in nodes]
    level: dict[int, int] = {}
    for d in set(assign):
        for lv, c in enumerate(_levels(cands[d], load)):
            if all(abs(evaluate(nodes[i][1], cands[d], concurrency=c).latency_s - got[i].latency_s) <= 1e-9
                   for i, dd in enumerate(assign) if dd == d):
                level[d] = lv
                break
        else:
            return False
    ok, _ = evaluate_assignment(wfs, cands, inv, assign, level,
                                lambda i, d, lv: evaluate(nodes[i][1], cands[d],
                                                          concurrency=_levels(cands[d], load)[lv]))
    return ok
