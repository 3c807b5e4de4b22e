"""runtime/control.py: the adaptive decisions as pure functions, on plain values and simulated time."""

from __future__ import annotations

import itertools

import pytest

from murakkab_lg.runtime import control
from murakkab_lg.runtime.control import AdaptiveConfig, ControllerState, NodeRoute, Option
from murakkab_lg.runtime.live import DeploymentStats, NodeStats, Snapshot, WorkflowStats
from murakkab_lg.spec import (
    Alternative,
    ApiSettings,
    Deployment,
    Intent,
    LlamaCppSettings,
    NodeChoice,
    Objective,
    Plan,
    Prediction,
    Rejection,
    Workflow,
    WorkflowNode,
)

CFG = AdaptiveConfig(sustain_s=5, dwell_s=30, min_calls=5, drift_ratio=1.5)


def _route(budget: float | None = 1.0) -> NodeRoute:
    return NodeRoute(primary=Option("p", 0.2, 2), alternatives=(Option("a1", 0.3, 2), Option("a2", 0.1, 8)),
                     budget_s=budget)


def test_choose_keeps_the_primary_while_it_meets_the_budget():
    assert control.choose(_route(), lambda n: None, lambda n: 0, lambda n: True) == "p"
    # 3 calls ahead on 2 slots of 0.3 s each: (3 + 1) / 2 x 0.3 = 0.6 s <= 1 s
    assert control.choose(_route(), lambda n: 0.3, lambda n: 3, lambda n: True) == "p"


def test_choose_spills_to_the_first_alternative_that_fits_in_rank_order():
    svc = {"p": 2.0, "a1": 0.5, "a2": 0.1}
    assert control.choose(_route(), svc.get, lambda n: 0, lambda n: True) == "a1"  # ranked first, fits
    assert control.choose(_route(), svc.get, lambda n: 0, lambda n: n != "a1") == "a2"  # a1 not running
    # nothing fits: whichever finishes first, still one of the node's feasible options
    slow = {"p": 2.0, "a1": 1.5, "a2": 3.0}
    assert control.choose(_route(), slow.get, lambda n: 0, lambda n: True) == "a1"


def test_no_budget_or_no_alternative_means_a_fixed_route():
    assert control.choose(_route(None), lambda n: 99.0, lambda n: 99, lambda n: True) == "p"
    lone = NodeRoute(primary=Option("p", 0.2, 1), budget_s=0.1)
    assert control.choose(lone, lambda n: 99.0, lambda n: 99, lambda n: True) == "p"


def test_completion_counts_queueing_past_the_slots():
    opt = Option("x", 0.5, 4)
    assert control.completion_s(opt, None, 3) == 0.5
    assert control.completion_s(opt, 1.0, 7) == pytest.approx(2.0)
    assert control.completion_s(Option("api", 0.5, None), 1.0, 100) == 1.0  # unknown slots: observed latency only


def _pred(lat: float, energy: float = 1.0, q: float = 0.9) -> Prediction:
    return Prediction(quality=q, latency_s=lat, energy_j=energy)


def _plan() -> tuple[Plan, Workflow]:
    wf = Workflow(name="wf", nodes=(
        WorkflowNode(name="a", intent=Intent("classify", min_quality=0.8, latency_slo_s=2.0, expected_calls=2)),
        WorkflowNode(name="b", intent=Intent("summarize", expected_output_tokens=100))), edges=(("a", "b"),),
        latency_slo_s=10.0)
    rejected = (Rejection(deployment="big", reason="objective", prediction=_pred(0.6, 5.0), detail="worse"),
                Rejection(deployment="tiny", reason="quality floor", prediction=_pred(0.1, 0.1, 0.5), detail="q"),
                Rejection(deployment="small -> big", reason="objective", prediction=_pred(0.5), detail="chain"))
    choices = (NodeChoice(node="a", intent="classify", deployment="mid", prediction=_pred(1.0), reason="r",
                          rejected=rejected),
               NodeChoice(node="b", intent="summarize", deployment="mid", prediction=_pred(3.0), reason="r"))
    deps = tuple(Deployment(name=n, model=n, engine=ApiSettings(litellm_model=n)) for n in ("mid",))
    return Plan(workflow="wf", policy="greedy", objective=Objective.ENERGY, choices=choices, deployments=deps), wf


def test_alternatives_are_the_feasible_rejections_only():
    plan, _ = _plan()
    assert plan.choice("a").alternatives == (Alternative(deployment="big", prediction=_pred(0.6, 5.0)),)


def test_node_routes_budget_from_node_slo_else_share_of_workflow_slo():
    plan, wf = _plan()
    routes = control.node_routes(plan, wf, {"mid": 2, "big": None})
    assert routes["a"].budget_s == pytest.approx(1.0)  # 2 s SLO over 2 calls per run
    assert routes["a"].primary == Option("mid", 0.5, 2)
    assert routes["a"].alternatives == (Option("big", 0.3, None),)
    assert routes["b"].budget_s == pytest.approx(10.0 * 3.0 / 4.0)  # its share of the end-to-end SLO
    assert control.slots_of(Deployment(name="l", model="l", engine=LlamaCppSettings(parallel=3), replicas=2)) == 6


def _snap(out_tokens: float = 32, calls: int = 20, per_run: float | None = 2.0, rate: float | None = None,
          p50: float | None = None) -> Snapshot:
    nodes = (NodeStats(workflow="wf", node="a", calls=calls, calls_per_s=1.0, mean_input_tokens=200,
                       mean_output_tokens=out_tokens, calls_per_run=per_run, escalation_rate=None,
                       deployments={"mid": calls}),)
    deps = {} if p50 is None else {"mid": DeploymentStats(
        deployment="mid", calls=calls, errors=0, error_rate=0, calls_per_s=1, p50_s=p50, p95_s=p50,
        ttft_p50_s=None, tpot_p50_s=None, service_s=p50)}
    wfs = {} if rate is None else {"wf": WorkflowStats(workflow="wf", runs=30, arrival_rate_per_s=rate)}
    return Snapshot(at=0, window_s=30, deployments=deps, nodes=nodes, workflows=wfs)


def test_drift_names_each_assumption_that_broke():
    plan, wf = _plan()
    assert control.drift(plan, wf, _snap(), CFG) == []
    reasons = control.drift(plan, wf, _snap(out_tokens=100, per_run=5.0, rate=2.0, p50=5.0), CFG)
    assert any("output tokens" in r for r in reasons) and any("calls per run" in r for r in reasons)
    assert any("runs overlap" in r for r in reasons)  # 2 runs/s x 4 s predicted: no longer one at a time
    # 5 s observed vs 3 s per call predicted (the slowest prediction among the nodes 'mid' serves)
    assert any("'mid'" in r and "1.7x" in r for r in reasons)
    assert control.drift(plan, wf, _snap(out_tokens=100, calls=3), CFG) == []  # too few samples to judge


def test_with_observed_updates_tokens_calls_and_rate():
    _, wf = _plan()
    new = control.with_observed(wf, _snap(out_tokens=100.4, per_run=3.0, rate=0.5), CFG)
    a = new.node("a").intent
    assert (a.expected_output_tokens, a.expected_input_tokens, a.expected_calls) == (100, 200, 3.0)
    assert a.constraints == wf.node("a").intent.constraints and new.arrival_rate_per_s == 0.5
    assert new.node("b") == wf.node("b")  # no observation: unchanged


def test_oscillating_drift_never_replans_and_sustained_drift_respects_the_dwell():
    state, replans = ControllerState(), []
    for tick in range(600):  # 60 s at 10 Hz, drift on and off every 2 s: never sustained for 5 s
        now = tick / 10
        state, due = control.step(state, ["drift"] if int(now / 2) % 2 == 0 else [], now, CFG)
        replans += [now] if due else []
    assert replans == []
    state = ControllerState()
    for tick in range(1000):  # 100 s of unbroken drift
        now = tick / 10
        state, due = control.step(state, ["drift"], now, CFG)
        replans += [now] if due else []
    assert replans[0] == pytest.approx(5.0)
    assert all(b - a >= CFG.dwell_s for a, b in itertools.pairwise(replans))
    assert len(replans) <= 1 + (100 - 5) // CFG.dwell_s


def test_swap_starts_what_is_new_and_stops_only_what_nothing_uses():
    plan, _ = _plan()
    big = Deployment(name="big", model="big", engine=ApiSettings(litellm_model="big"))
    moved = plan.choices[0].model_copy(update={"deployment": "big"})
    new = plan.model_copy(update={"choices": (moved, plan.choices[1]), "deployments": (plan.deployments[0], big)})
    sw = control.swap(plan, new, running={"mid"}, still_used=set())
    assert sw.start == ("big",) and sw.stop == () and sw.moved == {"a": ("mid", "big")}
    only_big = new.model_copy(update={"choices": tuple(c.model_copy(update={"deployment": "big"}) for c in new.choices),
                                      "deployments": (big,)})
    assert control.swap(plan, only_big, {"mid", "big"}, set()).stop == ("mid",)
    assert control.swap(plan, only_big, {"mid", "big"}, {"mid"}).stop == ()  # still someone's route
