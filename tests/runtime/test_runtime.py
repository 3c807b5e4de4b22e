"""Runtime v1: planning with static and greedy, route resolution, telemetry, energy, retries."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from murakkab_lg.backends.engines import FunctionEngine
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import PlanInfeasibleError, RoutingError
from murakkab_lg.policies.static import StaticPolicy
from murakkab_lg.runtime import Runtime
from murakkab_lg.runtime.telemetry import NO_ENERGY_METER, CpuEnergyMeter, summarize
from murakkab_lg.spec import ApiSettings, Deployment, Intent, Objective, Workflow, WorkflowNode
from murakkab_lg.testing.scripted_engine import synthetic_profile
from murakkab_lg.wire import Route

LADDER = {  # name: (quality per intent, energy per output token J, time per output token s)
    "small": ({"classify": 0.70, "extract": 0.50}, 0.05, 0.01),
    "medium": ({"classify": 0.85, "extract": 0.80}, 0.20, 0.02),
    "large": ({"classify": 0.90, "extract": 0.95}, 0.60, 0.05),
}


def _runtime(**kwargs) -> tuple[Runtime, list[tuple[str, dict]]]:
    calls: list[tuple[str, dict]] = []

    def factory(dep: Deployment, _replica: int) -> FunctionEngine:
        def answer(body: dict) -> dict:
            calls.append((dep.name, body))
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": f"from {dep.name}"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return FunctionEngine(dep.name, answer)

    rows = [synthetic_profile(n, quality=q, energy_per_output_token_j=e, tpot_s=t, memory_gb=i + 1.0)
            for i, (n, (q, e, t)) in enumerate(LADDER.items())]
    deps = [Deployment(name=n, model=n, engine=ApiSettings(litellm_model=n)) for n in LADDER]
    return Runtime(deps, ProfileStore(rows, "synthetic"), engine_factory=factory, **kwargs), calls


def _workflow(**floors: float) -> Workflow:
    nodes = (WorkflowNode(name="triage", intent=Intent("classify", min_quality=floors.get("triage", 0.8))),
             WorkflowNode(name="fields", intent=Intent("extract", min_quality=floors.get("fields", 0.9))))
    return Workflow(name="wf", nodes=nodes, edges=(("triage", "fields"),))


def test_greedy_picks_cheapest_model_meeting_each_floor() -> None:
    rt, _ = _runtime()
    plan = rt.plan(_workflow())
    assert plan.choice("triage").deployment == "medium"
    assert plan.choice("fields").deployment == "large"
    rejected = {r.deployment: r.reason for r in plan.choice("triage").rejected}
    assert rejected == {"small": "quality floor", "large": "objective"}
    assert {d.name for d in plan.deployments} == {"medium", "large"}


def test_static_uses_largest_everywhere_and_reports_floors_unenforced() -> None:
    rt, _ = _runtime()
    plan = rt.plan(_workflow(), policy=StaticPolicy())
    assert {c.deployment for c in plan.choices} == {"large"}


def test_latency_objective_and_slo_move_choices() -> None:
    rt, _ = _runtime(objective=Objective.LATENCY)
    plan = rt.plan(_workflow(triage=0.5, fields=0.5))
    assert plan.choice("triage").deployment == "small"
    slo_wf = Workflow(name="wf2", nodes=(WorkflowNode(name="n", intent=Intent(
        "extract", min_quality=0.9, latency_slo_s=0.5, expected_output_tokens=32)),))
    with pytest.raises(PlanInfeasibleError, match=r"node 'n': latency_slo_s 0.5 .* \(large\)"):
        rt.plan(slo_wf)


def test_infeasible_floor_names_node_and_best_available() -> None:
    rt, _ = _runtime()
    with pytest.raises(PlanInfeasibleError, match=r"node 'fields': min_quality 0.99, best available 0.95 \(large\)"):
        rt.plan(_workflow(fields=0.99))


def test_route_precedence_and_telemetry() -> None:
    rt, calls = _runtime(default="small")
    rt.apply(rt.plan(_workflow()))
    body = {"messages": [{"role": "user", "content": "hi"}], "murakkab": {"node": "x"}}
    rt.complete(body, Route(workflow="wf", node="triage", intent=Intent("classify"), deployment="large"))
    rt.complete(body, Route(workflow="wf", node="triage", intent=Intent("classify", min_quality=0.0)))
    rt.complete(body, Route(intent=Intent("extract", min_quality=0.7)))
    rt.complete(body)
    assert [c[0] for c in calls] == ["large", "medium", "medium", "small"]
    assert all("murakkab" not in b for _, b in calls)  # our routing field never reaches an engine
    recs = rt.telemetry.records()
    assert [r.node for r in recs] == ["triage", "triage", None, None]
    assert recs[1].intent == "classify" and recs[1].completion_tokens == 2
    assert summarize(recs)[0].calls == 2
    with pytest.raises(RoutingError, match="unknown deployment 'nope'"):
        rt.complete(body, Route(deployment="nope"))
    rt_no_default, _ = _runtime()
    with pytest.raises(RoutingError, match="no annotated node"):
        rt_no_default.complete(body)


def test_energy_meter_shares_cpu_between_overlapping_calls() -> None:
    cpu = [0.0]
    meter = CpuEnergyMeter(lambda: cpu[0], watts_per_core=10.0)
    a = meter.begin()
    cpu[0] = 1.0  # 1 s with only a in flight
    b = meter.begin()
    cpu[0] = 3.0  # 2 s shared by a and b
    ea = meter.end(a)
    cpu[0] = 4.0  # 1 s with only b
    eb = meter.end(b)
    assert ea == pytest.approx(10.0 * (1.0 + 1.0))
    assert eb == pytest.approx(10.0 * (1.0 + 1.0))
    assert CpuEnergyMeter(lambda: None, 10.0).end(CpuEnergyMeter(lambda: None, 10.0).begin()) is None


def test_engines_that_cannot_report_cpu_get_no_meter_and_unknown_energy() -> None:
    from murakkab_lg.backends.engines.llamacpp import LlamaCppEngine
    from murakkab_lg.backends.engines.openai_server import OpenAiServerEngine
    from murakkab_lg.runtime.replicas import _meter_for
    from murakkab_lg.spec import LlamaCppSettings, OpenAiServerSettings
    from murakkab_lg.testing.instant_engine import InstantEngine

    attached = OpenAiServerEngine("x", OpenAiServerSettings(base_url="http://127.0.0.1:9/v1", served_model="m"))
    assert not attached.reports_cpu and _meter_for(attached) is NO_ENERGY_METER
    assert not InstantEngine("i", "http://127.0.0.1:9").reports_cpu  # attached to someone else's server
    assert InstantEngine("i").reports_cpu  # its own child process
    own = LlamaCppEngine("l", "/nonexistent.gguf", LlamaCppSettings(), binary=Path("/nonexistent"))
    assert own.reports_cpu and isinstance(_meter_for(own), CpuEnergyMeter)
    # Through the runtime: a FunctionEngine reports no CPU, so its calls' energy is unknown, not 0.
    rt, _ = _runtime()
    rt.complete({"messages": [{"role": "user", "content": "x"}]}, Route(deployment="small"))
    rec = rt.telemetry.records()[-1]
    assert rec.ok and rec.energy_j is None and rec.energy_label is None


def test_engine_killed_between_calls_is_restarted_and_call_served(tiny_model: str) -> None:
    rt = Runtime.embedded(models=[tiny_model])
    try:
        body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4}
        route = Route(deployment=tiny_model)
        rt.complete(body, route)
        rep = rt._pool.pick(rt.deployments[tiny_model])
        os.kill(rep.engine.process.pid, signal.SIGKILL)
        rep.engine.process.popen.wait(5)
        resp = rt.complete(body, route)
        assert resp["choices"][0]["message"]["content"]
        recs = rt.telemetry.records()
        assert not recs[-2].ok and "unreachable" in recs[-2].error
        assert recs[-1].ok and recs[-1].retries == 1 and recs[-1].energy_label == "estimated"
    finally:
        rt.close()


def test_engine_killed_mid_stream_before_first_token_is_retried(tiny_model: str) -> None:
    rt = Runtime.embedded(models=[tiny_model])
    try:
        route = Route(deployment=tiny_model)
        rt.complete({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, route)
        rep = rt._pool.pick(rt.deployments[tiny_model])
        os.kill(rep.engine.process.pid, signal.SIGKILL)
        rep.engine.process.popen.wait(5)
        chunks = list(rt.stream({"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4}, route))
        assert any(c.get("usage") for c in chunks)
    finally:
        rt.close()


def test_concurrent_calls_share_one_started_deployment(tiny_model: str) -> None:
    rt = Runtime.embedded(models=[tiny_model])
    try:
        results: list[str] = []
        body = {"messages": [{"role": "user", "content": "Say yes"}], "max_tokens": 3}

        def call() -> None:
            results.append(rt.complete(body, Route(deployment=tiny_model))["model"])

        threads = [threading.Thread(target=call) for _ in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 4 and time.monotonic() - t0 < 60
        assert rt.running() == [tiny_model]
        assert len(rt._pool.ensure(rt.deployments[tiny_model])) == 1
        energies = [r.energy_j for r in rt.telemetry.records()]
        assert all(e is not None and e >= 0 for e in energies) and sum(energies) > 0
    finally:
        rt.close()


def test_apply_places_gpu_deployments_on_the_inventory() -> None:
    """Planned vLLM deployments without GPUs get them (and a memory share) before they start."""
    from murakkab_lg.spec import Device, Inventory, Placement, VllmSettings

    started: list[Deployment] = []

    def factory(dep: Deployment, _replica: int) -> FunctionEngine:
        started.append(dep)
        return FunctionEngine(dep.name, lambda body: {})

    rows = [synthetic_profile("llama-8b", quality={"classify": 0.9}, memory_gb=30.0),
            synthetic_profile("llama-1b", quality={"classify": 0.7}, memory_gb=10.0)]
    deps = [Deployment(name=r.deployment, model=f"/models/{r.deployment}", engine=VllmSettings(),
                       placement=Placement(device="H100")) for r in rows]
    inv = Inventory(devices=(Device(id="gpu0", kind="H100", memory_gb=80.0, gpu_index=0),))
    rt = Runtime(deps, ProfileStore(rows, "synthetic"), engine_factory=factory, inventory=inv, policy=StaticPolicy())
    wf = Workflow(name="g", nodes=(WorkflowNode(name="n", intent=Intent("classify")),))
    rt.apply(rt.plan(wf))
    [dep] = started
    assert dep.name == "llama-8b" and dep.placement.gpus == (0,)
    assert 0.0 < dep.engine.gpu_memory_utilization <= 0.95
    assert rt.deployments["llama-8b"].placement.gpus == (0,)


def test_plan_passes_the_runtime_inventory_to_the_policy() -> None:
    """A model that does not fit the runtime's GPUs is never planned, whatever its quality."""
    from murakkab_lg.errors import PlanInfeasibleError
    from murakkab_lg.spec import Device, Inventory, Placement, VllmSettings

    rows = [synthetic_profile("llama-70b", quality={"classify": 0.9}, memory_gb=140.0),
            synthetic_profile("llama-1b", quality={"classify": 0.7}, memory_gb=10.0)]
    deps = [Deployment(name=r.deployment, model=f"/models/{r.deployment}", engine=VllmSettings(),
                       placement=Placement(device="H100")) for r in rows]
    inv = Inventory(devices=(Device(id="gpu0", kind="H100", memory_gb=80.0, gpu_index=0),))
    rt = Runtime(deps, ProfileStore(rows, "synthetic"), inventory=inv, policy="milp")
    strict = Workflow(name="g", nodes=(WorkflowNode(name="n", intent=Intent("classify", min_quality=0.8)),))
    with pytest.raises(PlanInfeasibleError) as err:
        rt.plan(strict)
    assert "llama-70b" in str(err.value) and "gpu0" in str(err.value)
    loose = Workflow(name="g", nodes=(WorkflowNode(name="n", intent=Intent("classify", min_quality=0.5)),))
    assert rt.plan(loose).choice("n").deployment == "llama-1b"
    free = Runtime(deps, ProfileStore(rows, "synthetic"), policy="milp")  # no inventory: unconstrained
    assert free.plan(strict).choice("n").deployment == "llama-70b"


def test_a_call_record_holds_each_value_under_its_own_name() -> None:
    """The runtime builds records positionally (runtime._Attempt.finish): every field lands by name."""
    rt, _ = _runtime()
    t0 = time.time()
    rt.complete({"messages": [{"role": "user", "content": "x"}]},
                Route(workflow="wf", node="n", intent=Intent("classify", min_quality=0.8)))
    rec = rt.telemetry.records()[-1]
    assert rec._asdict() == {
        "workflow": "wf", "node": "n", "intent": "classify", "deployment": "medium", "model": "medium",
        "started_at": rec.started_at, "latency_s": rec.latency_s, "ttft_s": None,
        "prompt_tokens": 3, "completion_tokens": 2, "energy_j": None, "energy_label": None,
        "ok": True, "error": None, "retries": 0, "fallback_from": None, "stage": 0, "check": None,
        "escalated": False, "concurrency": 1, "cost_usd": None}
    assert t0 <= rec.started_at <= time.time() and 0 < rec.latency_s < 5
