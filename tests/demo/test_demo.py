"""The demo's runner on the two small ladder models (CI has tiny and small, not large).

The full three-model comparison is the README command; here we check that the real graph runs
end to end on real engines, that every node is served by the deployment its plan chose, and
that the JSON has the documented shape.
"""

from __future__ import annotations

import json

import pytest

from murakkab_lg.catalog.embedded import default_llamacpp_settings
from murakkab_lg.cli import main
from murakkab_lg.demo import tasks
from murakkab_lg.demo.graph import ANNOTATIONS, EDGES, build_graph
from murakkab_lg.demo.run import run_plan
from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.evals.base import get_eval_set
from murakkab_lg.integrations.langgraph.extract import workflow_from_graph
from murakkab_lg.policies.static import StaticPolicy
from murakkab_lg.runtime import Runtime


def _perfect_answer(name: str, ref: object) -> str:
    if name == "triage.extract":
        return json.dumps(ref)
    if name == "triage.reply":
        assert isinstance(ref, dict)
        return (f"About order {ref['order_id']}: we will send a replacement, refund the payment, and a senior "
                "agent will follow up; thank you.")
    return str(ref)


def test_triage_eval_sets_score_their_own_references() -> None:
    for name in tasks.TASKS:
        es = get_eval_set(name)
        assert len(es.items) >= 20
        for item in es.items:
            assert es.score(item, _perfect_answer(name, item.reference)) == 1.0, (name, item.id)
            assert es.score(item, "") == 0.0


def test_workflow_extracted_from_the_graph() -> None:
    wf = workflow_from_graph(build_graph(_NoLLM()), name="triage")
    assert {n.name: n.intent for n in wf.nodes} == ANNOTATIONS
    assert set(wf.edges) == set(EDGES)


class _NoLLM:
    """The graph is only compiled, never run, in the extraction test."""


def test_shipped_profile_plans_the_demo_as_documented() -> None:
    """Planning is pure: the three-model plan from the shipped profile, no engine started."""
    rt = Runtime.embedded(models=["tiny", "small", "large"])
    wf = workflow_from_graph(build_graph(_NoLLM()), name="triage")
    plan = rt.plan(wf)
    assert {c.node: c.deployment for c in plan.choices} == {
        "sentiment": "qwen2.5-coder-0.5b", "extract": "qwen2.5-coder-0.5b",
        "decide": "qwen2.5-coder-1.5b", "reply": "qwen2.5-coder-0.5b"}
    assert "shipped" in plan.profile_source and rt.running() == []
    static = rt.plan(wf, policy=StaticPolicy())
    assert {c.deployment for c in static.choices} == {"qwen2.5-coder-1.5b"}


def test_demo_graph_runs_on_real_engines(tiny_model: str, small_model: str) -> None:
    """CI has no large model: the decide floor is then infeasible (and says so), and the graph
    itself runs end to end on the static plan over the two small models."""
    with Runtime.embedded(models=[tiny_model, small_model]) as rt:
        wf = workflow_from_graph(build_graph(_NoLLM()), name="triage")
        with pytest.raises(PlanInfeasibleError, match=r"node 'decide': min_quality 0.45, best available 0.25"):
            rt.plan(wf)
        run = run_plan(rt, rt.plan(wf, policy=StaticPolicy()), tasks.tickets("heldout")[:2], concurrency=2)
    assert [n.name for n in run.nodes] == list(ANNOTATIONS)
    assert all(n.calls == 2 and n.tokens > 0 and n.energy_j > 0 for n in run.nodes)
    # what sim.validate reads: the engine settings and the token split each node ran with
    default = default_llamacpp_settings()
    assert all((n.threads, n.parallel) == (default.threads, default.parallel) for n in run.nodes)
    assert all(n.prompt_tokens > 0 and n.completion_tokens > 0 and n.prompt_tokens + n.completion_tokens == n.tokens
               for n in run.nodes)
    assert {n.model for n in run.nodes} == {small_model} and run.energy_label == "estimated"
    assert min(n.quality for n in run.nodes) >= 0.0 and max(n.quality for n in run.nodes) <= 1.0


def test_demo_command_needs_every_model(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("murakkab_lg.commands.demo.pulled_models", lambda: ["smollm2-135m"])
    assert main(["demo", "--quick"]) == 1
    assert "murakkab models pull --all" in capsys.readouterr().err
