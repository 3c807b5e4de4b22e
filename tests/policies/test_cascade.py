"""The cascade policy: expected figures from pass rates, checked by simulation, and its choices."""

from __future__ import annotations

import random

import pytest

from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, QualityScore
from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.policies._synthetic import SYNTHETIC, synthetic_candidates, synthetic_workflow
from murakkab_lg.policies.base import Candidate, PlanningProblem, evaluate
from murakkab_lg.policies.cascade import CascadePolicy, chain_figures
from murakkab_lg.policies.greedy import GreedyPolicy
from murakkab_lg.spec import Deployment, Intent, LlamaCppSettings, Objective, Workflow, WorkflowNode


def _cand(name: str, q: float, tpot: float, e_tok: float) -> Candidate:
    prof = DeploymentProfile(
        deployment=name, model=name, engine="llamacpp", hardware="cpu", energy_label="estimated",
        quality={"extract": QualityScore(score=q, metric="synthetic", n=200, ci_low=0.0, ci_high=1.0)},
        load=(LoadPoint(concurrency=1, prefill_tok_s=1000.0, tpot_s=tpot, throughput_tok_s=1 / tpot,
                        energy_per_output_token_j=e_tok),),
        provenance=SYNTHETIC,
    )
    return Candidate(deployment=Deployment(name=name, model=name, engine=LlamaCppSettings()), profile=prof)


def _wf(**constraints) -> Workflow:
    return Workflow(name="w", nodes=(WorkflowNode(name="extract", intent=Intent("extract", **constraints)),))


def test_cheap_small_model_first_then_escalate():
    small, large = _cand("small", 0.7, 0.01, 0.1), _cand("large", 0.95, 0.05, 1.0)
    wf = _wf(min_quality=0.9)
    plan = CascadePolicy().plan(PlanningProblem(workflow=wf, candidates=(small, large)))
    c = plan.choice("extract")
    assert (c.deployment, c.escalation) == ("small", ("large",))
    e_small, e_large = (evaluate(wf.nodes[0], x).energy_j for x in (small, large))
    assert c.prediction.energy_j == pytest.approx(e_small + (1 - 0.7) * e_large)
    assert c.prediction.energy_j < e_large and c.prediction.quality == 0.95
    assert {d.name for d in plan.deployments} == {"small", "large"}
    assert "escalates to large on 30%" in c.reason


def test_rarely_passing_small_model_is_not_worth_a_cascade():
    small, large = _cand("small", 0.05, 0.01, 0.1), _cand("large", 0.95, 0.05, 1.0)
    c = CascadePolicy().plan(PlanningProblem(workflow=_wf(min_quality=0.9), candidates=(small, large))).choice(
        "extract")
    assert (c.deployment, c.escalation) == ("large", ())


def test_p95_latency_counts_the_escalation_path():
    small, large = _cand("small", 0.7, 0.01, 0.1), _cand("large", 0.95, 0.05, 1.0)
    node = WorkflowNode(name="extract", intent=Intent("extract"))
    t_small, t_large = (evaluate(node, x).latency_s for x in (small, large))
    slo = (t_large + t_small + t_large) / 2  # above the large model alone, below small+large
    wf = _wf(min_quality=0.9, latency_slo_s=slo, latency_stat="p95")
    c = CascadePolicy().plan(PlanningProblem(workflow=wf, candidates=(small, large))).choice("extract")
    assert (c.deployment, c.escalation) == ("large", ())
    rejected = next(r for r in c.rejected if r.deployment == "small -> large")
    assert rejected.reason == "latency SLO" and "p95" in rejected.detail


def test_expected_figures_match_a_simulation_of_nested_failures():
    rng = random.Random(0)
    stages = (_cand("a", 0.5, 0.01, 0.1), _cand("b", 0.8, 0.02, 0.4), _cand("c", 0.97, 0.05, 1.5))
    node = WorkflowNode(name="x", intent=Intent("extract"))
    ch = chain_figures(node, stages)
    energy = [evaluate(node, s).energy_j for s in stages]
    total, n = 0.0, 40_000
    for _ in range(n):
        u = rng.random()  # item difficulty: stage i passes iff u < q_i (nested failures)
        for s, e in zip(stages, energy, strict=True):
            total += e
            if u < s.profile.quality["extract"].score:
                break
    assert ch.expected.energy_j == pytest.approx(total / n, rel=0.02)


def test_never_worse_than_greedy_in_expectation():
    """Per node, the cascade's expected energy (ENERGY) or cost (COST) is at most greedy's; the
    candidates are priced, so the COST comparison is a real one."""
    cands = tuple(synthetic_candidates(6, 41, priced=True))
    assert all(c.profile.usd_per_output_token > 0 for c in cands)
    wf = synthetic_workflow(6, 42)
    metric = {Objective.ENERGY: "energy_j", Objective.COST: "cost_usd"}
    for objective, field in metric.items():
        p = PlanningProblem(workflow=wf, candidates=cands, objective=objective)
        g = GreedyPolicy().plan(p)
        c = CascadePolicy().plan(p)
        for node in wf.nodes:
            gv, cv = g.choice(node.name).prediction, c.choice(node.name).prediction
            assert getattr(cv, field) <= getattr(gv, field) + 1e-12, (objective, node.name)


def test_infeasible_quality_names_best():
    small, large = _cand("small", 0.7, 0.01, 0.1), _cand("large", 0.95, 0.05, 1.0)
    with pytest.raises(PlanInfeasibleError) as err:
        CascadePolicy().plan(PlanningProblem(workflow=_wf(min_quality=0.99), candidates=(small, large)))
    assert "best available 0.95 (large)" in str(err.value) and err.value.constraint == "min_quality"


def test_observed_escalation_rate_replaces_the_profile_pass_rate():
    small, large = _cand("small", 0.7, 0.01, 0.1), _cand("large", 0.95, 0.05, 1.0)
    wf = _wf(min_quality=0.9, escalation_rate=0.9)  # the run-time check fails far more often than 30%
    e_small, e_large = (evaluate(wf.nodes[0], x).energy_j for x in (small, large))
    ch = chain_figures(wf.nodes[0], (small, large))
    assert ch.reach == (1.0, 0.9) and ch.expected.energy_j == pytest.approx(e_small + 0.9 * e_large)
    c = CascadePolicy().plan(PlanningProblem(workflow=wf, candidates=(small, large))).choice("extract")
    assert (c.deployment, c.escalation) == ("large", ())  # at 90% escalation the cascade no longer pays
