"""runtime/live.py: windowed statistics from call records, bounded memory, the router's O(1) read."""

from __future__ import annotations

import time

import pytest

from murakkab_lg.runtime.live import LiveState
from murakkab_lg.runtime.telemetry import CallRecord


def _rec(dep: str = "d", latency: float = 0.1, *, node: str | None = "n", ok: bool = True, stage: int = 0,
         check: str | None = None, escalated: bool = False, concurrency: int = 1, tokens: int = 10) -> CallRecord:
    return CallRecord(workflow="wf", node=node, intent="classify", deployment=dep, model=dep, started_at=0.0,
                      latency_s=latency, ttft_s=latency / 2, prompt_tokens=20, completion_tokens=tokens,
                      energy_j=None, energy_label=None, ok=ok, error=None if ok else "boom", stage=stage,
                      check=check, escalated=escalated, concurrency=concurrency)


def test_deployment_node_and_workflow_statistics():
    live = LiveState(window_s=60)
    for _ in range(3):
        live.run_started("wf")
    for i in range(10):
        live.record(_rec(latency=0.1 * (i + 1)))
    live.record(_rec(ok=False))
    snap = live.snapshot()
    d = snap.deployments["d"]
    assert (d.calls, d.errors) == (11, 1) and abs(d.error_rate - 1 / 11) < 1e-9
    assert (d.p50_s, d.p95_s, d.ttft_p50_s) == pytest.approx((0.6, 1.0, 0.3))
    assert d.tpot_p50_s == pytest.approx(0.3 / 9)  # (latency - TTFT) / (tokens - 1)
    n = snap.node("wf", "n")
    assert n.calls == 11 and n.mean_output_tokens == 10 and abs(n.calls_per_run - 11 / 3) < 1e-9
    assert n.escalation_rate is None and snap.workflows["wf"].runs == 3


def test_escalation_rate_counts_checked_first_stages():
    live = LiveState()
    live.record(_rec("small", check="fail", escalated=True))
    live.record(_rec("big", stage=1, check="pass"))
    live.record(_rec("small", check="pass"))
    n = live.snapshot().node("wf", "n")
    assert n.calls == 2 and n.escalation_rate == 0.5 and n.deployments == {"small": 2, "big": 1}


def test_service_time_is_fresh_only_and_excludes_queueing_past_the_slots():
    live = LiveState(fresh_s=0.2)
    live.slots["d"] = 2
    live.record(_rec(latency=0.9, concurrency=6))  # 6 in flight on 2 slots: a third of it was service
    assert abs(live.service_s("d") - 0.3) < 1e-9
    time.sleep(0.25)
    assert live.service_s("d") is None  # stale: the router falls back to the plan's prediction
    live.record(_rec(latency=0.05))
    assert live.service_s("d") == 0.05  # a fresh sample after a gap starts over, not averaged with the old


def test_memory_is_bounded():
    live = LiveState(samples=16, max_keys=4)
    for i in range(100):
        live.record(_rec(node=f"n{i}"))
        live.run_started(f"wf{i}")
    snap = live.snapshot()
    assert len(snap.nodes) == 4 and len(snap.workflows) == 4 and snap.deployments["d"].calls == 16


def test_following_telemetry_reads_its_records_when_asked_with_their_own_times():
    from murakkab_lg.runtime.telemetry import Telemetry

    tel = Telemetry()
    tel.record(_rec("before"))  # made before follow(): not taken
    live = LiveState(window_s=60, fresh_s=5)
    live.follow(tel)
    now = time.time()
    recent = _rec("fresh", latency=0.2)._replace(started_at=now - 0.2)
    old = _rec("old", latency=0.2)._replace(started_at=now - 30)  # ended 30 s ago
    tel.record(recent)
    tel.record(old)
    assert live.service_s("fresh") == pytest.approx(0.2)  # the router's read takes the new records
    assert live.service_s("old") is None  # ended longer ago than fresh_s: stale, as if recorded then
    snap = live.snapshot()
    assert set(snap.deployments) == {"fresh", "old"} and snap.deployments["old"].calls == 1
    tel.record(recent)
    assert live.snapshot().deployments["fresh"].calls == 2  # each record taken once
