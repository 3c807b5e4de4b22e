"""The adaptive runtime on real HTTP test engines: spill under a slow engine and return after the
dwell, re-plan on drift by drain-and-swap under load without losing a call, run-time cascades."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.runtime import Runtime, Served
from murakkab_lg.runtime.control import AdaptiveConfig
from murakkab_lg.spec import ApiSettings, Deployment, Intent, Workflow, WorkflowNode
from murakkab_lg.testing.scripted_engine import Reply, ScriptedServer, ServiceTime, synthetic_profile
from murakkab_lg.wire import Route

BODY = {"messages": [{"role": "user", "content": "label this ticket"}], "max_tokens": 8}


def _runtime(server: ScriptedServer, rows: list, **kwargs) -> Runtime:
    deps = [Deployment(name=r.deployment, model=r.deployment,
                       engine=ApiSettings(litellm_model=f"openai/{r.deployment}", api_base=server.url)) for r in rows]
    return Runtime(deps, ProfileStore(rows, "synthetic fixture"), engine_factory=lambda d, _i: server.engine(d.name),
                   **kwargs)


def _load(rt: Runtime, route: Route, stop: threading.Event, served: list, errors: list, threads: int = 4) -> list:
    def worker() -> None:
        while not stop.is_set():
            try:
                resp = rt.complete(BODY, route)
                served.append((time.monotonic(), resp["model"]))
            except Exception as e:  # counted: the tests assert there are none
                errors.append(e)
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts


def _stop(stop: threading.Event, threads: list) -> None:
    stop.set()
    for t in threads:
        t.join()


def _share(served: list, since: float, until: float, name: str) -> float:
    window = [m for t, m in served if since <= t < until]
    return Counter(window)[name] / max(1, len(window))


@pytest.fixture
def server():
    with ScriptedServer(service=ServiceTime(base_s=0.01)) as s:
        yield s


def test_slow_engine_spills_within_seconds_and_traffic_returns_after_the_dwell(server):
    rows = [synthetic_profile("cheap", quality={"classify": 0.8}, tpot_s=0.001, prefill_tok_s=1e5,
                              energy_per_output_token_j=0.1),
            synthetic_profile("alt", quality={"classify": 0.85}, tpot_s=0.001, prefill_tok_s=1e5,
                              energy_per_output_token_j=0.2)]
    cfg = AdaptiveConfig(fresh_s=1.0, replan=False)
    intent = Intent("classify", min_quality=0.75, latency_slo_s=1.0)  # spill past 0.8 s (headroom 0.8)
    wf = Workflow(name="wf", nodes=(WorkflowNode(name="triage", intent=intent),))
    with _runtime(server, rows, adaptive=cfg) as rt:
        plan = rt.plan(wf)
        assert plan.choice("triage").deployment == "cheap"
        assert [a.deployment for a in plan.choice("triage").alternatives] == ["alt"]
        rt.apply(plan)
        assert set(rt.running()) == {"cheap", "alt"}  # the alternative is warm
        for name in ("cheap", "alt"):  # the first calls open connections (slow): let them age out
            rt.complete(BODY, Route(deployment=name))
        time.sleep(cfg.fresh_s)
        route = Route(workflow="wf", node="triage", intent=intent)
        stop, served, errors = threading.Event(), [], []
        t0 = time.monotonic()
        ts = _load(rt, route, stop, served, errors)
        time.sleep(1.5)
        t_slow = time.monotonic()
        server.extra_delay_s["cheap"] = 2.0  # the engine slows past the node's budget
        time.sleep(5.0)
        t_fast = time.monotonic()
        server.extra_delay_s["cheap"] = 0.0
        time.sleep(5.0)
        _stop(stop, ts)
        end = time.monotonic()
    assert not errors
    assert _share(served, t0 + 0.5, t_slow, "cheap") > 0.8  # healthy: the planned deployment serves
    # within seconds (the first slow answer takes 2 s to observe), traffic spilled
    assert _share(served, t_slow + 3.0, t_fast, "alt") > 0.8
    # after the delay ends (calls already at the slow engine finish within 2 s), one probe per
    # fresh_s (1 s) finds the primary fast again
    assert _share(served, t_fast + 2.0 + cfg.fresh_s + 1.0, end, "cheap") > 0.8


def test_drift_replans_by_drain_and_swap_under_load_losing_no_call():
    words = {"n": 40}

    def answer(req) -> Reply:
        return Reply.text(" ".join(["w"] * words["n"]))

    # predictions far above the scripted engine's real speed: only the tokens can drift, not the latency
    rows = [synthetic_profile("cheap", quality={"summarize": 0.8}, tpot_s=0.01, prefill_tok_s=1e5,
                              energy_per_output_token_j=0.1),
            synthetic_profile("fast", quality={"summarize": 0.8}, tpot_s=0.001, prefill_tok_s=1e5,
                              energy_per_output_token_j=0.3)]
    cfg = AdaptiveConfig(spill=False, interval_s=0.1, sustain_s=0.3, dwell_s=60, min_calls=5, window_s=2.0)
    intent = Intent("summarize", latency_slo_s=1.0, expected_output_tokens=40, expected_input_tokens=4)  # as sent
    wf = Workflow(name="wf", nodes=(WorkflowNode(name="digest", intent=intent),))
    with ScriptedServer(answer, service=ServiceTime(base_s=0.005)) as server, \
            _runtime(server, rows, adaptive=cfg) as rt:
        rt.apply(rt.plan(wf))
        assert rt.plans["wf"].choice("digest").deployment == "cheap"
        route = Route(workflow="wf", node="digest", intent=intent)
        stop, served, errors = threading.Event(), [], []
        ts = _load(rt, route, stop, served, errors)
        time.sleep(0.5)
        words["n"] = 200  # answers grow 5x: at 200 tokens 'cheap' is predicted at 2 s > the 1 s SLO
        deadline = time.monotonic() + 10
        while not rt.replans and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        _stop(stop, ts)
        status = rt.status()
    assert not errors
    (event,) = rt.replans
    assert event.moved == {"digest": ("cheap", "fast")}
    assert any("output tokens" in r for r in event.reasons)
    assert event.stopped == ("cheap",) and event.lost_calls == 0
    assert rt.plans["wf"].choice("digest").deployment == "fast"
    assert "cheap" not in rt.running()
    assert served[-1][1] == "fast"
    assert status.workflows["wf"].replans == 1 and status.replans == (event,)
    assert rt.workflows["wf"].node("digest").intent.expected_output_tokens > 60  # the window mixes 40s and 200s


def test_cascade_escalates_on_a_failing_check_and_records_every_stage():
    def answer(req) -> Reply:
        return Reply.text("maybe later" if req.model == "small" else '{"order": 42}')

    rows = [synthetic_profile("small", quality={"extract": 0.6}, energy_per_output_token_j=0.01),
            synthetic_profile("big", quality={"extract": 0.95}, energy_per_output_token_j=1.0)]
    intent = Intent("extract", min_quality=0.9, check="json_object")
    wf = Workflow(name="wf", nodes=(WorkflowNode(name="fields", intent=intent),))
    with ScriptedServer(answer) as server, _runtime(server, rows, policy="cascade") as rt:
        plan = rt.plan(wf)
        assert (plan.choice("fields").deployment, plan.choice("fields").escalation) == ("small", ("big",))
        rt.apply(plan)
        mark = rt.telemetry.mark()
        served, streamed = Served(), Served()
        resp = rt.complete(BODY, Route(workflow="wf", node="fields", intent=intent), served=served)
        assert resp["choices"][0]["message"]["content"] == '{"order": 42}'
        chunks = list(rt.stream({**BODY, "stream": True}, Route(workflow="wf", node="fields", intent=intent),
                                served=streamed))
        assert served.deployment == streamed.deployment == "big"  # the stage that answered, not the plan's first
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
        assert text == '{"order": 42}'  # the failed stage's stream was held back, never sent
        recs = rt.telemetry.since(mark)
        assert [(r.deployment, r.stage, r.check, r.escalated) for r in recs] == [
            ("small", 0, "fail", True), ("big", 1, "pass", False)] * 2
        # without a check nothing can tell a failed answer: the stage the plan's quality rests on serves
        unchecked = rt.complete(BODY, Route(workflow="wf", node="fields", intent=Intent("extract", min_quality=0.9)))
        assert unchecked["model"] == "big"
        node = rt.status().nodes[0]
        assert node.escalation_rate == 1.0


def test_intent_route_cache_is_bounded(monkeypatch):
    import murakkab_lg.runtime.runtime as rt_mod

    monkeypatch.setattr(rt_mod, "_INTENT_ROUTES", 8)
    rows = [synthetic_profile("cheap", quality={"classify": 0.8}),
            synthetic_profile("alt", quality={"classify": 0.9}, energy_per_output_token_j=0.5)]
    with ScriptedServer() as server, _runtime(server, rows) as rt:
        for i in range(20):  # distinct constraint values: each is its own cached route
            assert rt.resolve(Route(intent=Intent("classify", min_quality=0.5 + i / 100))).name == "cheap"
        assert rt.resolve(Route(intent=Intent("classify", min_quality=0.85))).name == "alt"
        assert len(rt._intent_routes) == 8
