"""The MILP policy against brute force, its constraints, its errors and its import weight."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from planner_oracle import brute_force, objective_of, plan_is_feasible

from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.policies import get_policy, policy_names
from murakkab_lg.policies._synthetic import (
    calibrated_slo,
    synthetic_candidates,
    synthetic_inventory,
    synthetic_workflow,
)
from murakkab_lg.policies._tables import build_tables
from murakkab_lg.policies.base import Candidate, PlanningProblem, evaluate
from murakkab_lg.policies.greedy import GreedyPolicy
from murakkab_lg.policies.milp import MilpPolicy, plan_many
from murakkab_lg.spec import Device, Intent, Inventory, Objective, Workflow, WorkflowNode

OBJECTIVES = (Objective.ENERGY, Objective.LATENCY, Objective.COST)


def _value(plans, wfs, objective):
    preds = [p.choice(n.name).prediction for p, wf in zip(plans, wfs, strict=True) for n in wf.nodes]
    return objective_of(wfs, preds, objective)


def _agree(wfs, cands, inv, objective):
    """MILP and brute force agree on feasibility and on the optimum; the plan meets every constraint."""
    best = brute_force(wfs, cands, inv, objective)
    try:
        plans = plan_many(wfs, cands, inv, objective)
    except PlanInfeasibleError:
        assert best is None, f"milp said infeasible, brute force found {best}"
        return None
    assert best is not None, "milp returned a plan for an instance brute force finds infeasible"
    assert plan_is_feasible(plans, wfs, cands, inv)
    got = _value(plans, wfs, objective)
    assert got == pytest.approx(best, rel=1e-6, abs=1e-12)
    return plans


@pytest.mark.parametrize("seed", range(36))
def test_matches_brute_force_dag_with_slo(seed):
    rng = np.random.default_rng(seed)
    cands = synthetic_candidates(4, seed, priced=True)
    wf = synthetic_workflow(int(rng.integers(2, 5)), seed + 1000, edge_p=0.5)
    wf = calibrated_slo(wf, cands, float(rng.choice([-0.1, 0.0, 0.3, 0.7, 1.2])))
    _agree([wf], cands, None, OBJECTIVES[seed % 3])


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_with_gpu_memory_and_colocation(seed):
    cands = synthetic_candidates(4, 50 + seed, gpu=True)
    wf = calibrated_slo(synthetic_workflow(3, 70 + seed, floors=seed % 2 == 0), cands, 0.5)
    inv = synthetic_inventory(1 + seed % 2, memory_gb=40.0 + 20 * (seed % 3))
    _agree([wf], cands, inv, OBJECTIVES[seed % 3])


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_under_load_levels(seed):
    rate = [0.5, 2.0, 8.0, 30.0][seed % 4]
    cands = synthetic_candidates(3, 90 + seed, gpu=seed % 2 == 1, levels=(1, 4, 16))
    wf = synthetic_workflow(3, 110 + seed, floors=False, rate=rate)
    inv = synthetic_inventory(2, 80.0) if seed % 2 else synthetic_inventory(0, 64.0, cpu_cores=2)
    _agree([wf], cands, inv, OBJECTIVES[seed % 2])


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_several_workflows_one_inventory(seed):
    cands = synthetic_candidates(3, 130 + seed, gpu=True)
    a = calibrated_slo(synthetic_workflow(2, 140 + seed, name="a"), cands, 0.3)
    b = calibrated_slo(synthetic_workflow(2, 150 + seed, name="b"), cands, 0.8)
    plans = _agree([a, b], cands, synthetic_inventory(1, 80.0), OBJECTIVES[seed % 3])
    if plans is not None:
        assert [p.workflow for p in plans] == ["a", "b"]
        shared = {d.name for d in plans[0].deployments} & {d.name for d in plans[1].deployments}
        for name in shared:  # a shared deployment is the same deployment, on the same device
            assert next(d for d in plans[0].deployments if d.name == name) == next(
                d for d in plans[1].deployments if d.name == name)


def test_tables_equal_evaluate_for_every_pair():
    cands = synthetic_candidates(5, 7, levels=(1, 4, 16), priced=True)
    wf = synthetic_workflow(12, 8)
    wf = wf.model_copy(update={"nodes": tuple(
        n.model_copy(update={"intent": n.intent.model_copy(update={"expected_iterations": 1.0 + i % 3})})
        for i, n in enumerate(wf.nodes))})
    from murakkab_lg.catalog.published import published_deployments, published_profiles

    profiles = {p.deployment: p for p in published_profiles()}  # real rows: prefill not published
    cands += [Candidate(deployment=d, profile=profiles[d.name]) for d in published_deployments()[:2]]
    t = build_tables([wf], cands, with_levels=True)
    for d, c in enumerate(cands):
        for lv, conc in enumerate(t.levels[d]):
            for i, node in enumerate(wf.nodes):
                p = evaluate(node, c, concurrency=conc)
                assert (t.lat[d][lv][i], t.energy[d][lv][i], t.cost[d][lv][i]) == (
                    p.latency_s, p.energy_j, p.cost_usd)


@pytest.mark.parametrize("seed", range(10))
def test_never_worse_than_greedy(seed):
    cands = synthetic_candidates(8, 200 + seed)
    wf = calibrated_slo(synthetic_workflow(10, 210 + seed), cands, 1.0)  # greedy's own makespan: it fits
    for objective in OBJECTIVES:
        problem = PlanningProblem(workflow=wf, candidates=tuple(cands), objective=objective)
        g, m = GreedyPolicy().plan(problem), MilpPolicy().plan(problem)
        assert _value([m], [wf], objective) <= _value([g], [wf], objective) * (1 + 1e-9) + 1e-12


def test_slo_forces_faster_choice_and_explains_it():
    moved_any = False
    for seed in range(5):
        cands = synthetic_candidates(8, 3 + seed)
        loose = synthetic_workflow(6, 4 + seed)
        tight = calibrated_slo(loose, cands, 0.2)
        free = MilpPolicy().plan(PlanningProblem(workflow=loose, candidates=tuple(cands)))
        bound = MilpPolicy().plan(PlanningProblem(workflow=tight, candidates=tuple(cands)))
        assert _value([bound], [tight], Objective.LATENCY) <= tight.latency_slo_s * (1 + 1e-6)
        assert _value([bound], [tight], Objective.ENERGY) >= _value([free], [loose], Objective.ENERGY)
        moved = [c for c in bound.choices if c.deployment != free.choice(c.node).deployment]
        reasons = {r.reason for c in moved for r in c.rejected if r.deployment == free.choice(c.node).deployment}
        assert reasons <= {"latency SLO", "objective"}
        if moved:
            moved_any = True
            assert "latency SLO" in reasons
            assert any("end-to-end" in r.detail for c in moved for r in c.rejected)
    assert moved_any


def test_objective_moves_choices_in_the_expected_direction():
    cands = synthetic_candidates(8, 11, priced=True)
    wf = synthetic_workflow(8, 12)
    plans = {o: MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands), objective=o))
             for o in OBJECTIVES}
    for metric in OBJECTIVES:
        vals = {o: _value([p], [wf], metric) for o, p in plans.items()}
        assert vals[metric] == pytest.approx(min(vals.values()), rel=1e-9)
    assert _value([plans[Objective.LATENCY]], [wf], Objective.LATENCY) < _value(
        [plans[Objective.ENERGY]], [wf], Objective.LATENCY)
    assert _value([plans[Objective.ENERGY]], [wf], Objective.ENERGY) < _value(
        [plans[Objective.LATENCY]], [wf], Objective.ENERGY)


def _one(intent: Intent, slo: float | None = None) -> Workflow:
    return Workflow(name="w", nodes=(WorkflowNode(name="extract", intent=intent),), latency_slo_s=slo)


def test_quality_floor_error_names_node_and_best():
    cands = synthetic_candidates(5, 21)
    best = max(c.profile.quality["extract"].score for c in cands if "extract" in c.profile.quality)
    who = next(c.name for c in cands if "extract" in c.profile.quality
               and c.profile.quality["extract"].score == best)
    with pytest.raises(PlanInfeasibleError) as err:
        MilpPolicy().plan(PlanningProblem(workflow=_one(Intent("extract", min_quality=0.995)),
                                          candidates=tuple(cands)))
    msg = str(err.value)
    assert "node 'extract': min_quality 0.99" in msg or "min_quality 1.00" in msg
    assert f"best available {best:.2f} ({who})" in msg
    assert err.value.node == "extract" and err.value.constraint == "min_quality" and err.value.best == best


def test_node_latency_error_names_fastest():
    cands = synthetic_candidates(5, 22)
    node = WorkflowNode(name="extract", intent=Intent("extract"))
    fastest = min(evaluate(node, c).latency_s for c in cands)
    with pytest.raises(PlanInfeasibleError) as err:
        MilpPolicy().plan(PlanningProblem(workflow=_one(Intent("extract", latency_slo_s=fastest / 2)),
                                          candidates=tuple(cands)))
    assert err.value.constraint == "latency_slo_s" and err.value.best == pytest.approx(fastest)
    assert "node 'extract'" in str(err.value)


def test_end_to_end_slo_error_names_critical_path_and_best_latency():
    cands = synthetic_candidates(5, 23)
    wf = calibrated_slo(synthetic_workflow(6, 24), cands, -0.2)
    fast = calibrated_slo(synthetic_workflow(6, 24), cands, 0.0).latency_slo_s
    with pytest.raises(PlanInfeasibleError) as err:
        MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands)))
    msg = str(err.value)
    assert "critical path n0 -> " in msg and f"at least {fast:.2f} s" in msg
    assert err.value.constraint == "latency_slo_s" and err.value.best == pytest.approx(fast)


def test_capacity_errors_name_the_inventory():
    cands = synthetic_candidates(4, 25, gpu=True)
    wf = synthetic_workflow(3, 26, floors=False)
    tiny = Inventory(devices=(Device(id="gpu0", kind="H100", memory_gb=1.0, gpu_index=0),))
    with pytest.raises(PlanInfeasibleError) as err:
        MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands), inventory=tiny))
    assert err.value.constraint == "capacity" and "gpu0" in str(err.value)


def test_colocated_vllm_engines_get_shares_that_fit_the_gpu():
    """Deployments co-located on one GPU are told shares that cover their memory and add to <= 0.9."""
    cands = synthetic_candidates(6, 27, gpu=True)
    wf = synthetic_workflow(6, 28, floors=False)
    inv = synthetic_inventory(1, 80.0)
    plan = MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands), inventory=inv))
    memory = {c.name: c.profile.memory_gb for c in cands}
    assert all(d.placement.gpus == (0,) for d in plan.deployments)
    assert sum(d.engine.gpu_memory_utilization for d in plan.deployments) <= 0.9 + 1e-9
    for d in plan.deployments:
        assert d.engine.gpu_memory_utilization * 80.0 >= memory[d.name] - 0.01 * 80.0


def test_load_raises_concurrency_and_latency():
    cands = synthetic_candidates(1, 29, levels=(1, 4, 16))
    calm = synthetic_workflow(4, 30, floors=False, rate=0.01)
    busy = calm.model_copy(update={"arrival_rate_per_s": 40.0})
    lat = {}
    for wf in (calm, busy):
        try:
            plan = MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands)))
        except PlanInfeasibleError as e:
            assert e.constraint == "load"
            continue
        lat[wf.arrival_rate_per_s] = sum(c.prediction.latency_s for c in plan.choices)
    assert 0.01 in lat
    if 40.0 in lat:
        assert lat[40.0] > lat[0.01]


def test_registered_and_pure():
    assert {"milp", "cascade"} <= set(policy_names())
    cands = tuple(synthetic_candidates(3, 31))
    wf = synthetic_workflow(3, 32, floors=False)
    problem = PlanningProblem(workflow=wf, candidates=cands)
    before = problem.model_dump()
    plan = get_policy("milp").plan(problem)
    assert problem.model_dump() == before and plan.policy == "milp"
    assert all(math.isfinite(c.prediction.energy_j) for c in plan.choices)


@pytest.mark.parametrize("module", ["murakkab_lg.policies.milp", "murakkab_lg.policies.cascade"])
def test_policies_import_nothing_heavy(module):
    code = (f"import sys, {module}\n"
            "heavy = [m for m in ('langgraph', 'fastapi', 'httpx', 'vllm', 'langchain', 'langchain_core', "
            "'scipy.optimize', 'uvicorn', 'litellm') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
