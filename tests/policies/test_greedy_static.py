"""The baseline policies: greedy is exact when nothing couples nodes; static serves all with one."""

from __future__ import annotations

import pytest
from planner_oracle import brute_force, objective_of

from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.policies import get_policy
from murakkab_lg.policies._synthetic import synthetic_candidates, synthetic_workflow
from murakkab_lg.policies.base import PlanningProblem, evaluate
from murakkab_lg.policies.greedy import GreedyPolicy
from murakkab_lg.policies.static import StaticPolicy
from murakkab_lg.spec import Intent, Objective, Workflow, WorkflowNode


@pytest.mark.parametrize("seed", range(12))
def test_greedy_is_optimal_without_slo_or_capacity(seed):
    """With no end-to-end SLO and no inventory the problem separates by node: greedy is exact."""
    cands = synthetic_candidates(4, 300 + seed, priced=True)
    wf = synthetic_workflow(3, 320 + seed)
    objective = (Objective.ENERGY, Objective.LATENCY, Objective.COST)[seed % 3]
    best = brute_force([wf], cands, None, objective)
    try:
        plan = GreedyPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands), objective=objective))
    except PlanInfeasibleError:
        assert best is None
        return
    got = objective_of([wf], [plan.choice(n.name).prediction for n in wf.nodes], objective)
    assert got == pytest.approx(best, rel=1e-9)


def test_greedy_explains_rejections():
    cands = synthetic_candidates(5, 340)
    wf = Workflow(name="w", nodes=(WorkflowNode(name="x", intent=Intent("classify", min_quality=0.5)),))
    plan = GreedyPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands)))
    c = plan.choice("x")
    assert len(c.rejected) == len(cands) - 1
    for r in c.rejected:
        if r.reason == "objective":
            assert r.prediction.energy_j >= c.prediction.energy_j
        else:
            assert r.reason == "quality floor" and (r.prediction.quality or 0) < 0.5
    assert [d.name for d in plan.deployments] == [c.deployment]


def test_static_serves_every_node_with_the_largest_model():
    cands = synthetic_candidates(4, 350)
    wf = synthetic_workflow(4, 351)
    plan = get_policy("static").plan(PlanningProblem(workflow=wf, candidates=tuple(cands)))
    largest = max(cands, key=lambda c: c.profile.memory_gb)
    assert {c.deployment for c in plan.choices} == {largest.name}
    for n in wf.nodes:  # constraints are reported, not enforced: predictions are still honest
        assert plan.choice(n.name).prediction == evaluate(n, largest)


def test_static_named_deployment_and_unknown_name():
    cands = tuple(synthetic_candidates(3, 360))
    wf = synthetic_workflow(2, 361)
    plan = StaticPolicy(deployment=cands[1].name).plan(PlanningProblem(workflow=wf, candidates=cands))
    assert plan.deployments == (cands[1].deployment,)
    with pytest.raises(ConfigError, match="unknown deployment 'nope'"):
        StaticPolicy(deployment="nope").plan(PlanningProblem(workflow=wf, candidates=cands))


def test_greedy_ignores_the_end_to_end_slo_that_milp_meets():
    """Greedy is blind to the critical path: here its plan breaks the workflow SLO, milp's does not."""
    from murakkab_lg.policies._synthetic import calibrated_slo
    from murakkab_lg.policies.milp import MilpPolicy

    for seed in range(10):
        cands = synthetic_candidates(8, 370 + seed)
        wf = calibrated_slo(synthetic_workflow(6, 380 + seed), cands, 0.3)
        problem = PlanningProblem(workflow=wf, candidates=tuple(cands))
        g = GreedyPolicy().plan(problem)
        lat = objective_of([wf], [g.choice(n.name).prediction for n in wf.nodes], Objective.LATENCY)
        if lat > wf.latency_slo_s * 1.01:
            m = MilpPolicy().plan(problem)
            mlat = objective_of([wf], [m.choice(n.name).prediction for n in wf.nodes], Objective.LATENCY)
            assert mlat <= wf.latency_slo_s * (1 + 1e-6)
            return
    pytest.fail("no seed where greedy breaks the SLO; the instances are too loose")
