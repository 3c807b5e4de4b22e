"""Planner scale (performance goal P3): MILP plan time for nodes x deployments, median of runs.

Each instance is a seeded random DAG (synthetic, labelled so in every profile's provenance) with
quality floors on 60% of nodes, some fan-out, and an end-to-end SLO placed between the fastest
possible critical path (0) and the one per-node least-energy choices give (1): at 1/3 and 2/3 by
default, so the SLO binds and the solver must trade. Times are wall-clock for `MilpPolicy().plan(problem)` end to
end: cost tables, pre-filtering, the HiGHS solve and the explanations. The `+ capacity` rows add
an inventory of H100s (memory with co-location), which turns off dominance pruning.

    python benchmarks/planner_scale.py               # the four sizes x two SLOs, 7 runs each
    python benchmarks/planner_scale.py --capacity    # also with an inventory
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from murakkab_lg.explain import totals
from murakkab_lg.policies._capacity import needs
from murakkab_lg.policies._graph import dag_of
from murakkab_lg.policies._model import options, reduce_by_slo
from murakkab_lg.policies._synthetic import (
    calibrated_slo,
    synthetic_candidates,
    synthetic_inventory,
    synthetic_workflow,
)
from murakkab_lg.policies._tables import build_tables
from murakkab_lg.policies.base import PlanningProblem
from murakkab_lg.policies.greedy import GreedyPolicy
from murakkab_lg.policies.milp import MilpPolicy

SIZES = ((5, 10), (20, 50), (100, 100), (500, 200))
TARGET_S = {(20, 50): 0.050, (500, 200): 2.0}


def _option_count(problem: PlanningProblem) -> str:
    """Options (x variables) the solver sees, of nodes x deployments."""
    t = build_tables([problem.workflow], problem.candidates, with_levels=False)
    need = needs(problem.candidates, problem.inventory)
    opt = options(t, need, prune=need is None)
    if need is None:
        wf = problem.workflow
        opt = reduce_by_slo(opt, t.n_nodes, [wf], [dag_of(wf)], problem.objective)
    return f"{len(opt.n):,} of {t.n_nodes * len(problem.candidates):,}"


def _time(fn, runs: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    fn()  # warm: imports, HiGHS load
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gap", type=float, default=None,
                    help="also time the 500x200 rows with this mip_rel_gap (default 1e-4; 1e-7 proves the optimum)")
    ap.add_argument("--capacity", action="store_true", help="also time with a GPU inventory (sizes <= 100x100)")
    ap.add_argument("--tightness", type=float, nargs="+", default=[1 / 3, 2 / 3],
                    help="SLO position between the fastest (0) and the least-energy (1) critical path")
    args = ap.parse_args()
    table = Table(title=f"planner scale: MILP plan time, median of {args.runs} runs (seed {args.seed})")
    for col in ("nodes x deployments", "model", "x variables", "milp median ms",
                "min..max ms", "greedy ms", "SLO met", "energy vs greedy", "target"):
        table.add_column(col, justify="right" if col not in ("model",) else "left")
    scenarios = [(False, t) for t in args.tightness] + ([(True, args.tightness[0])] if args.capacity else [])
    for capacity, between in scenarios:
        for n, d in SIZES:
            if capacity and n * d > 10_000:
                continue  # see docs/planner.md: capacity turns pruning off; large sizes take long
            cands = tuple(synthetic_candidates(d, args.seed, gpu=capacity))
            wf = calibrated_slo(synthetic_workflow(n, args.seed + 1), list(cands), between)
            inv = synthetic_inventory(max(2, d // 10), 80.0) if capacity else None
            problem = PlanningProblem(workflow=wf, candidates=cands, inventory=inv)
            for gap in (None, args.gap) if (n, d) == SIZES[-1] and args.gap else (None,):
                pol = MilpPolicy() if gap is None else MilpPolicy(mip_rel_gap=gap)
                _row(table, problem, pol, n, d, capacity, between, args.runs)
    Console(width=150).print(table)
    Console(width=150).print(
        "[dim]x variables: (node, deployment) options left after pre-filtering and the exact SLO reductions. "
        "greedy ignores the end-to-end SLO, so its energy is a lower bound the MILP pays above to meet it; "
        "profiles are synthetic (murakkab_lg.policies._synthetic).[/]")


def _row(table: Table, problem: PlanningProblem, pol: MilpPolicy, n: int, d: int, capacity: bool, between: float,
         runs: int) -> None:
    wf = problem.workflow
    med, ts = _time(lambda p=problem, pol=pol: pol.plan(p), runs)
    g_med, _ = _time(lambda p=problem: GreedyPolicy().plan(p), max(1, runs // 2))
    plan, greedy = pol.plan(problem), GreedyPolicy().plan(problem)
    opts = _option_count(problem)
    span = totals(plan, wf)["latency_s"]
    e_m, e_g = totals(plan)["energy_j"], totals(greedy)["energy_j"]
    target = TARGET_S.get((n, d))
    verdict = "" if target is None else ("ok" if med <= target else "MISSED") + f" (<= {target * 1e3:g} ms)"
    model = f"SLO at {between:.2f}" + (" + GPU memory" if capacity else "")
    if pol.mip_rel_gap != MilpPolicy().mip_rel_gap:
        model += f", gap {pol.mip_rel_gap:g}" + (" (exact)" if pol.mip_rel_gap < 1e-6 else "")
    table.add_row(f"{n} x {d}", model, str(opts), f"{med * 1e3:.1f}",
                  f"{min(ts) * 1e3:.1f}..{max(ts) * 1e3:.1f}", f"{g_med * 1e3:.1f}",
                  "yes" if span <= wf.latency_slo_s * (1 + 1e-6) else "NO", f"{e_m / e_g:.3f}x", verdict)


if __name__ == "__main__":
    main()
