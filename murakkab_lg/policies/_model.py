"""The MILP's matrices: columns, rows and objective, built sparse from the cost tables.

Kept apart from `milp.py` so that the policy reads as estimate -> solve -> report, and so the
formulation can be inspected (and counted by the benchmark) without solving it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from murakkab_lg.policies._capacity import Need
from murakkab_lg.policies._graph import Dag
from murakkab_lg.policies._tables import Tables
from murakkab_lg.policies.gpu_memory import usable_gb
from murakkab_lg.spec import Inventory, Objective, Workflow

__all__ = ("Formulation", "Options", "formulate", "options", "reduce_by_slo")


@dataclass
class Options:
    """The (node, deployment, level) triples the solver may pick, after pre-filtering."""

    n: np.ndarray
    d: np.ndarray
    lvl: np.ndarray
    lat: np.ndarray
    energy: np.ndarray
    cost: np.ndarray


def _pareto(keys: np.ndarray) -> np.ndarray:
    """Mask of rows not weakly dominated by an earlier-sorted row (exact duplicates keep the first)."""
    if np.ptp(keys[:, 2]) == 0:  # one cost for all (self-hosted): a 2-D sweep suffices
        keys = keys[:, :2]
    order = np.lexsort(keys.T[::-1])
    k = keys[order]
    if k.shape[1] == 2:
        best_before = np.minimum.accumulate(np.r_[np.inf, k[:-1, 1]])
        dominated = k[:, 1] >= best_before
    else:
        le = np.all(k[None, :, 1:] <= k[:, None, 1:], axis=2)
        dominated = np.tril(le, -1).any(axis=1)
    keep = np.zeros(len(keys), dtype=bool)
    keep[order[~dominated]] = True
    return keep


def options(t: Tables, needs: list[Need] | None, *, prune: bool) -> Options:
    """Every feasible option; with `prune`, only each node's Pareto set over (energy, latency, cost).

    Pruning is exact only where nothing couples deployments beyond latency (no inventory, no
    load), so the caller asks for it only then.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    for d in range(len(t.candidates)):
        if needs is not None and not needs[d].placeable:
            continue
        for lv, ok in enumerate(t.feasible[d]):
            idx = np.flatnonzero(ok)
            parts.append((idx, np.full(len(idx), d), np.full(len(idx), lv),
                          t.lat[d][lv][idx], t.energy[d][lv][idx], t.cost[d][lv][idx]))
    if parts:
        n, d, lvl, lat, energy, cost = (np.concatenate(col) for col in zip(*parts, strict=True))
    else:
        n, d, lvl = (np.zeros(0, dtype=int) for _ in range(3))
        lat, energy, cost = (np.zeros(0) for _ in range(3))
    opt = Options(n, d, lvl, lat, energy, cost)
    if prune and len(n):
        order = np.argsort(n, kind="stable")
        opt = Options(*(a[order] for a in (n, d, lvl, lat, energy, cost)))
        keep = np.zeros(len(opt.n), dtype=bool)
        bounds = np.flatnonzero(np.diff(opt.n)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(opt.n)], strict=True):
            keys = np.stack([opt.energy[lo:hi], opt.lat[lo:hi], opt.cost[lo:hi]], axis=1)
            keep[lo:hi] = _pareto(keys)
        opt = Options(*(a[keep] for a in (opt.n, opt.d, opt.lvl, opt.lat, opt.energy, opt.cost)))
    return opt


def _subset(opt: Options, keep: np.ndarray) -> Options:
    return Options(*(a[keep] for a in (opt.n, opt.d, opt.lvl, opt.lat, opt.energy, opt.cost)))


def _through(dag: Dag, lat: np.ndarray) -> np.ndarray:
    """Per node: the longest path through it, not counting its own latency."""
    lk = lat.tolist()
    return np.array(dag.finish_times(lk)) + np.array(dag.tail_times(lk)) - 2 * lat


def reduce_by_slo(opt: Options, n_nodes: int, workflows: Sequence[Workflow], dags: Sequence[Dag],
                  objective: Objective) -> Options:
    """Two exact reductions, valid when nothing but latency couples nodes (no inventory, no load).

    1. Drop option (n, d) if even with every other node at its fastest option the path through n
       would break the SLO: no feasible plan uses it.
    2. Fix node n to its best option by the objective if, with every other node at its *slowest*
       remaining option, the path through n still meets the SLO: whatever the others do, the best
       option is safe, so some optimum uses it. Repeated while it fixes more nodes. (Not for the
       LATENCY objective, where a node's latency is the objective.)
    3. If every node's best option meets every SLO together, that is the optimum: nothing to solve.
    """
    offsets = np.cumsum([0] + [len(w.nodes) for w in workflows])
    slo = np.full(n_nodes, np.inf)
    wf_of = np.zeros(n_nodes, dtype=int)
    for k, wf in enumerate(workflows):
        wf_of[offsets[k]:offsets[k + 1]] = k
        if wf.latency_slo_s is not None:
            slo[offsets[k]:offsets[k + 1]] = wf.latency_slo_s * (1 + 1e-9)

    def per_node(values: np.ndarray, o: Options, reduce: np.ufunc, init: float) -> np.ndarray:
        out = np.full(n_nodes, init)
        reduce.at(out, o.n, values)
        return out

    def through(lat: np.ndarray) -> np.ndarray:
        out = np.zeros(n_nodes)
        for k, dag in enumerate(dags):
            lo, hi = offsets[k], offsets[k + 1]
            out[lo:hi] = _through(dag, lat[lo:hi])
        return out

    if np.isfinite(slo).any():
        fastest = per_node(opt.lat, opt, np.minimum, np.inf)
        opt = _subset(opt, through(fastest)[opt.n] + opt.lat <= slo[opt.n])
    if objective is Objective.LATENCY or not len(opt.n):
        return opt
    primary = opt.energy if objective is Objective.ENERGY else opt.cost
    secondary = opt.lat if objective is Objective.ENERGY else opt.energy
    order = np.lexsort((np.arange(len(opt.n)), secondary, primary, opt.n))
    first = np.ones(len(order), dtype=bool)
    first[1:] = opt.n[order][1:] != opt.n[order][:-1]
    best = np.full(n_nodes, -1)
    best[opt.n[order][first]] = order[first]  # per node, its best option by the objective
    is_best = np.arange(len(opt.n)) == best[opt.n]
    spans = [dag.makespan(opt.lat[best[offsets[k]:offsets[k + 1]]].tolist()) for k, dag in enumerate(dags)]
    if all(sp <= (wf.latency_slo_s or np.inf) * (1 + 1e-9) for sp, wf in zip(spans, workflows, strict=True)):
        return _subset(opt, is_best)  # 3. the per-node optimum meets every SLO: it is the optimum
    fixed = np.zeros(n_nodes, dtype=bool)
    while True:
        keep = ~fixed[opt.n] | (np.arange(len(opt.n)) == best[opt.n])
        slowest = per_node(opt.lat[keep], _subset(opt, keep), np.maximum, 0.0)
        ok = ~fixed & (through(slowest) + opt.lat[best] <= slo)
        if not ok.any():
            return _subset(opt, keep)
        fixed |= ok


@dataclass
class Formulation:
    """`min c.x  s.t.  lb <= A x <= ub, bounds, integrality` plus where each variable block starts."""

    n_cols: int = 0
    c: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    row_lb: list[float] = field(default_factory=list)
    row_ub: list[float] = field(default_factory=list)
    blocks: dict[str, dict] = field(default_factory=dict)

    def add_cols(self, k: int, *, lo: float = 0.0, hi: float = 1.0, integer: bool = True) -> np.ndarray:
        start = self.n_cols
        self.n_cols += k
        self.c += [0.0] * k
        self.lo += [lo] * k
        self.hi += [hi] * k
        self.integer += [1 if integer else 0] * k
        return np.arange(start, start + k)

    def add_row(self, cols: Sequence[int], vals: Sequence[float], lb: float, ub: float) -> None:
        r = len(self.row_lb)
        self.rows += [r] * len(cols)
        self.cols += list(cols)
        self.vals += list(vals)
        self.row_lb.append(lb)
        self.row_ub.append(ub)

    def add_rows(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> None:
        """Vectorised: `rows` are 0-based within this batch of len(lb) rows."""
        base = len(self.row_lb)
        self.rows += (np.asarray(rows) + base).tolist()
        self.cols += np.asarray(cols).tolist()
        self.vals += np.asarray(vals, dtype=float).tolist()
        self.row_lb += np.asarray(lb, dtype=float).tolist()
        self.row_ub += np.asarray(ub, dtype=float).tolist()


def formulate(t: Tables, opt: Options, workflows: Sequence[Workflow], dags: Sequence[Dag],
              needs: list[Need] | None, inventory: Inventory | None, objective: Objective) -> Formulation:
    """Build the model stated in `milp.MilpPolicy`'s docstring."""
    f = Formulation()
    inf = np.inf
    n_nodes, n_opt = t.n_nodes, len(opt.n)
    multi = any(len(lv) > 1 for lv in t.levels)
    used = sorted(set(opt.d.tolist()))
    w = f.add_cols(n_opt)
    f.blocks["w"] = {"cols": w}
    # 1. one deployment (and level) per node
    f.add_rows(opt.n, w, np.ones(n_opt), np.ones(n_nodes), np.ones(n_nodes))
    # 2. deployment runs (y) and its level (s)
    y = {d: int(f.add_cols(1)[0]) for d in used} if needs is not None else {}
    s: dict[tuple[int, int], int] = {}
    if multi:
        for d in used:
            for lv in range(len(t.levels[d])):
                s[(d, lv)] = int(f.add_cols(1)[0])
        sc = np.array([s[(int(d), int(lv))] for d, lv in zip(opt.d, opt.lvl, strict=True)])
        f.add_rows(np.r_[np.arange(n_opt), np.arange(n_opt)], np.r_[w, sc],
                   np.r_[np.ones(n_opt), -np.ones(n_opt)], np.full(n_opt, -inf), np.zeros(n_opt))
        for d in used:
            cols = [s[(d, lv)] for lv in range(len(t.levels[d]))]
            if d in y:
                f.add_row([*cols, y[d]], [1.0] * len(cols) + [-1.0], 0.0, 0.0)
            else:
                f.add_row(cols, [1.0] * len(cols), 0.0, 1.0)
    elif y:
        yc = np.array([y[int(d)] for d in opt.d])
        f.add_rows(np.r_[np.arange(n_opt), np.arange(n_opt)], np.r_[w, yc],
                   np.r_[np.ones(n_opt), -np.ones(n_opt)], np.full(n_opt, -inf), np.zeros(n_opt))
    f.blocks["y"], f.blocks["s"] = y, s
    # 3. longest-path potentials: l_n = node latency, f_n >= f_u + l_n, T_w >= f_sink, T_w <= SLO
    offset = np.cumsum([0] + [len(wf.nodes) for wf in workflows])
    makespan: dict[int, int] = {}
    for k, (wf, dag) in enumerate(zip(workflows, dags, strict=True)):
        if wf.latency_slo_s is None and objective is not Objective.LATENCY:
            continue
        m = len(wf.nodes)
        sel = (opt.n >= offset[k]) & (opt.n < offset[k + 1])
        loc = opt.n[sel] - offset[k]
        ell = f.add_cols(m, hi=inf, integer=False)
        fin = f.add_cols(m, hi=inf, integer=False)
        tw = int(f.add_cols(1, hi=wf.latency_slo_s or inf, integer=False)[0])
        makespan[k] = tw
        f.add_rows(np.r_[np.arange(m), loc], np.r_[ell, w[sel]], np.r_[np.ones(m), -opt.lat[sel]],
                   np.zeros(m), np.zeros(m))
        f.add_rows(np.r_[np.arange(m), np.arange(m)], np.r_[fin, ell], np.r_[np.ones(m), -np.ones(m)],
                   np.zeros(m), np.full(m, inf))
        for v in range(m):
            for u in dag.preds[v]:
                f.add_row([int(fin[v]), int(ell[v]), int(fin[u])], [1.0, -1.0, -1.0], 0.0, inf)
        for v in dag.sinks:
            f.add_row([tw, int(fin[v])], [1.0, -1.0], 0.0, inf)
    f.blocks["T"] = makespan
    # 4. load: the level a deployment runs at is the lowest whose concurrency carries it (Little's law)
    rate = np.array([workflows[r.wf].arrival_rate_per_s or 0.0 for r in t.refs])
    if multi:
        for d in used:
            reps = t.candidates[d].deployment.replicas
            for lv, c in enumerate(t.levels[d]):
                sel = (opt.d == d) & (opt.lvl == lv)
                load = rate[opt.n[sel]] * t.width[opt.n[sel]] * opt.lat[sel]
                f.add_row([*w[sel].tolist(), s[(d, lv)]], [*load.tolist(), -reps * c], -inf, 0.0)
                if lv > 0:
                    below = rate[opt.n[sel]] * t.width[opt.n[sel]] * t.lat[d][lv - 1][opt.n[sel]]
                    c_below = t.levels[d][lv - 1]
                    f.add_row([*w[sel].tolist(), s[(d, lv)]], [*below.tolist(), -reps * c_below], 0.0, inf)
    # 5. capacity: slots on devices, memory with co-location, compute shared under load
    if needs is not None and inventory is not None:
        _capacity_rows(f, t, opt, needs, inventory, used, y, w, rate, multi)
    # objective
    c = np.zeros(f.n_cols)
    if objective is Objective.LATENCY:
        c[list(makespan.values())] = 1.0
    else:
        c[w] = opt.energy if objective is Objective.ENERGY else opt.cost
    f.c = c.tolist()
    return f


def _capacity_rows(f: Formulation, t: Tables, opt: Options, needs: list[Need], inv: Inventory,
                   used: list[int], y: dict[int, int], w: np.ndarray, rate: np.ndarray, multi: bool) -> None:
    mem_terms: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(inv.devices))}
    on_dev: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(inv.devices))}  # dev -> (d, col)
    z: dict[tuple[int, int], int] = {}
    for d in used:
        need = needs[d]
        if need.slots == 0:
            continue
        if need.pinned:
            for dev in need.pinned:
                mem_terms[dev].append((y[d], need.memory_gb[dev]))
                on_dev[dev].append((d, y[d]))
            continue
        cols = []
        for dev, mem in need.memory_gb.items():
            z[(d, dev)] = col = int(f.add_cols(1)[0])
            cols.append(col)
            mem_terms[dev].append((col, mem))
            on_dev[dev].append((d, col))
        f.add_row([*cols, y[d]], [1.0] * len(cols) + [-float(need.slots)], 0.0, 0.0)
    for dev, terms in mem_terms.items():
        if terms:
            f.add_row([c for c, _ in terms], [m for _, m in terms], -np.inf, usable_gb(inv.devices[dev]))
    f.blocks["z"] = z
    if not multi or not rate.any():
        return
    # compute: v[d,dev] >= cu_d * u_d - cu_d * (1 - z[d,dev]),  sum_d v[d,dev] <= compute_units(dev)
    for dev, placed in on_dev.items():
        vcols = []
        for d, zc in placed:
            need = needs[d]
            sel = opt.d == d
            c_max = t.levels[d][-1] * t.candidates[d].deployment.replicas
            util = rate[opt.n[sel]] * t.width[opt.n[sel]] * opt.lat[sel] / c_max
            v = int(f.add_cols(1, hi=np.inf, integer=False)[0])
            vcols.append(v)
            cu = need.compute_units
            f.add_row([v, *w[sel].tolist(), zc], [1.0, *(-cu * util).tolist(), -cu], -cu, np.inf)
        if vcols:
            f.add_row(vcols, [1.0] * len(vcols), -np.inf, inv.devices[dev].compute_units)
