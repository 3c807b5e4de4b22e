"""Published GPU rows: every row sourced, converted to profiles the planner can use, fit within bound."""

from __future__ import annotations

import statistics

import pytest

from murakkab_lg.catalog import published as pub
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.policies import Candidate, PlanningProblem, get_policy
from murakkab_lg.spec import Intent, Objective, VllmSettings, Workflow, WorkflowNode


def test_every_row_names_its_source_commit_and_licence() -> None:
    rows = pub.mlenergy_rows()
    assert len(rows) >= 30
    for r in rows:
        assert r.repo == "ml-energy/leaderboard" and len(r.commit) == 40 and r.license == "Apache-2.0"
        assert r.file.startswith("public/data/models/")
        # the published energy per token is power / throughput; a transcription slip breaks this
        assert r.energy_per_token_j == pytest.approx(r.avg_power_w / r.output_throughput_tok_s, rel=0.02)
    for q in pub.quality_rows():
        assert q.repo and len(q.commit) == 40 and q.license and 0 < q.score_pct <= 100


@pytest.mark.parametrize("key", list(pub.group_rows(pub.mlenergy_rows())))
def test_fit_error_within_documented_bound(key: tuple[str, str, int]) -> None:
    rows = pub.group_rows(pub.mlenergy_rows())[key]
    errors = pub.fit_errors(rows, pub.fit_group(rows))
    bound = pub.NOISY_GROUPS.get(key, pub.FIT_MAX_REL_ERROR)
    assert max(errors) <= bound, f"{key}: max relative error {max(errors):.3f} > {bound}"
    if key not in pub.NOISY_GROUPS:
        assert statistics.mean(errors) <= pub.FIT_MEAN_REL_ERROR


def test_profiles_and_deployments_match_and_carry_published_provenance() -> None:
    profiles = pub.published_profiles()
    deployments = {d.name: d for d in pub.published_deployments()}
    assert {p.deployment for p in profiles} == set(deployments)
    for p in profiles:
        d = deployments[p.deployment]
        assert isinstance(d.engine, VllmSettings) and d.placement.device in ("H100", "B200")
        assert len(d.placement.gpus) == d.engine.tensor_parallel_size
        assert p.provenance.kind == "published" and p.energy_label == "published"
        assert set(p.quality) >= {"classify", "answer", "extract", "summarize"}
        if p.model.startswith("meta-llama/"):  # the Llama cards also publish MATH and HumanEval
            assert set(p.quality) >= {"reason", "code"}
        # energy per token falls as batches grow: the physics the planner relies on
        energies = [lp.energy_per_output_token_j for lp in p.load]
        assert energies[0] > energies[-1]


def test_published_rows_are_unchanged_in_the_profile() -> None:
    prof = next(p for p in pub.published_profiles() if p.deployment == "llama-3.1-8b-instruct@h100x1")
    row = next(r for r in pub.mlenergy_rows()
               if r.model_id == "meta-llama/Llama-3.1-8B-Instruct" and r.gpu == "H100" and r.max_num_seqs == 64)
    lp = next(lp for lp in prof.load if lp.concurrency == 64)
    assert lp.energy_per_output_token_j == row.energy_per_token_j
    assert lp.tpot_s == pytest.approx(row.median_itl_ms / 1000)
    assert lp.prefill_tok_s is None  # not published, and not invented


def test_planner_can_plan_a_gpu_fleet_from_published_rows() -> None:
    store = ProfileStore(pub.published_profiles(), "published: ML.ENERGY")
    cands = tuple(Candidate(deployment=d, profile=store.get(d.name)) for d in pub.published_deployments())
    wf = Workflow(name="gpu", nodes=(
        WorkflowNode(name="triage", intent=Intent("classify", min_quality=0.6)),
        WorkflowNode(name="solve", intent=Intent("reason", min_quality=0.7)),
    ))
    plan = get_policy("greedy").plan(PlanningProblem(workflow=wf, candidates=cands, objective=Objective.ENERGY,
                                                     profile_source="; ".join(store.sources)))
    # MATH 51.9 (8B) < 0.7 <= 77.0 (70B): the reasoning node must land on a 70B deployment
    assert "70b" in plan.choice("solve").deployment
    assert "8b" in plan.choice("triage").deployment
    assert "ML.ENERGY" in plan.profile_source
