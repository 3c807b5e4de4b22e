"""ServerMetrics: plain accumulators on the hot path, Prometheus families at scrape.

The exposition is parsed back with prometheus_client's own parser and compared with what the
Counter/Histogram/Gauge implementation printed for the same calls (captured once, written out
below), so a scraper sees the same names, help texts, label sets and values as before.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from murakkab_lg.runtime.telemetry import CallRecord
from murakkab_lg.server.errors import ApiError
from murakkab_lg.server.metrics import ServerMetrics
from murakkab_lg.server.serving import Admission

LE = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
      "30.0", "60.0", "120.0", "+Inf")
FAST = {"intent": "classify", "node": "n1", "deployment": "fast"}
SLOW = {"intent": "", "node": "", "deployment": "slow"}


def record(**kw) -> CallRecord:
    base = {"workflow": None, "node": None, "intent": None, "deployment": "d", "model": "m", "started_at": 0.0,
            "latency_s": 0.02, "ttft_s": None, "prompt_tokens": 0, "completion_tokens": 0, "energy_j": None,
            "energy_label": None}
    return CallRecord(**{**base, **kw})


def fed() -> ServerMetrics:
    m = ServerMetrics()
    fast = {"intent": "classify", "node": "n1", "deployment": "fast"}
    m.observe(record(**fast, latency_s=0.003, ttft_s=0.001, prompt_tokens=10, completion_tokens=2, energy_j=0.5,
                     energy_label="estimated"))
    m.observe(record(**fast, latency_s=0.005, prompt_tokens=5, completion_tokens=3, energy_j=0.25,
                     energy_label="estimated"))  # exactly on a bound: counts in le="0.005"
    m.observe(record(**fast, latency_s=300.0, ttft_s=0.2, prompt_tokens=1))  # past the last bound: only +Inf
    m.observe(record(deployment="slow", ok=False, error="boom", latency_s=1.0, energy_j=2.0, energy_label="measured"))
    for code in (200, 200, 429, 400):
        m.response(code)
    return m


def scrape(m: ServerMetrics) -> dict[str, dict]:
    """family name -> {"type", "help", "samples": {(sample name, frozenset(labels)): value}}."""
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        out[fam.name] = {"type": fam.type, "help": fam.documentation,
                         "samples": {(s.name, frozenset(s.labels.items())): s.value for s in fam.samples}}
    return out


def value(families: dict, family: str, sample: str, **labels: str) -> float:
    return families[family]["samples"][(sample, frozenset(labels.items()))]


def test_counts_tokens_energy_and_http_codes() -> None:
    f = scrape(fed())
    calls = "murakkab_engine_calls"
    assert value(f, calls, calls + "_total", **FAST, outcome="ok") == 3
    assert value(f, calls, calls + "_total", **FAST, outcome="error") == 0
    assert value(f, calls, calls + "_total", **SLOW, outcome="error") == 1
    assert value(f, calls, calls + "_total", **SLOW, outcome="ok") == 0
    tok = "murakkab_tokens"
    assert value(f, tok, tok + "_total", **FAST, kind="prompt") == 16
    assert value(f, tok, tok + "_total", **FAST, kind="completion") == 5
    joules = "murakkab_energy_joules"
    assert value(f, joules, joules + "_total", **FAST, label="estimated") == pytest.approx(0.75)
    assert value(f, joules, joules + "_total", **SLOW, label="measured") == 2.0  # a failed call's energy counts
    assert len(f[joules]["samples"]) == 2  # no energy series where no call reported energy
    http = "murakkab_http_responses"
    assert {dict(k[1])["code"]: v for k, v in f[http]["samples"].items()} == {"200": 2, "429": 1, "400": 1}
    created = f[calls + "_created"]["samples"]
    assert len(created) == 4 and all(v > 1e9 for v in created.values())  # unix times, one per series


def test_histograms_are_cumulative_with_inf_sum_and_count() -> None:
    f = scrape(fed())
    lat = "murakkab_engine_call_latency_seconds"
    buckets = [value(f, lat, lat + "_bucket", **FAST, le=le) for le in LE]
    # 0.003 and 0.005 fall in le="0.005", 300 s only in +Inf; cumulative from there on.
    assert buckets == [0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3]
    assert value(f, lat, lat + "_count", **FAST) == 3
    assert value(f, lat, lat + "_sum", **FAST) == pytest.approx(300.008)
    assert value(f, lat, lat + "_count", **SLOW) == 0  # failed calls have no latency
    ttft = "murakkab_engine_time_to_first_token_seconds"
    assert [value(f, ttft, ttft + "_bucket", **FAST, le=le) for le in LE] == [1] * 7 + [2] * 10
    assert value(f, ttft, ttft + "_count", **FAST) == 2
    assert value(f, ttft, ttft + "_sum", **FAST) == pytest.approx(0.201)


def test_admission_gauges_follow_the_real_admission_gate() -> None:
    m = ServerMetrics()
    gate = Admission(max_inflight=1, max_queue=1, retry_after_s=1, metrics=m)

    async def run() -> tuple[dict, dict]:
        await gate.enter()
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)  # the second request waits for the slot
        with pytest.raises(ApiError):
            await gate.enter()  # the third is past max_inflight + max_queue: 429
        busy = scrape(m)
        gate.leave()
        await waiter
        gate.leave()
        return busy, scrape(m)

    busy, idle = asyncio.run(run())
    for f, inflight, queued in ((busy, 1, 1), (idle, 0, 0)):
        assert value(f, "murakkab_requests_inflight", "murakkab_requests_inflight") == inflight
        assert value(f, "murakkab_requests_queued", "murakkab_requests_queued") == queued
        assert value(f, "murakkab_admission_rejected", "murakkab_admission_rejected_total") == 1


def test_names_help_and_label_sets_match_the_prometheus_objects_they_replace() -> None:
    """Captured from the Counter/Histogram/Gauge implementation (main at 448af71) fed the same calls."""
    keys = {"fast": ("classify", "n1", "fast"), "slow": ("", "", "slow")}
    per_call = {(*keys[k], x) for k in keys for x in ("ok", "error")}
    tokens = {(*keys[k], x) for k in keys for x in ("prompt", "completion")}
    old = {
        "murakkab_engine_calls": ("counter", "Engine calls by intent, node, deployment and outcome",
                                  ("intent", "node", "deployment", "outcome"), per_call),
        "murakkab_engine_call_latency_seconds": (
            "histogram", "Engine call latency (request sent to last byte), successful calls",
            ("intent", "node", "deployment"), set(keys.values())),
        "murakkab_engine_time_to_first_token_seconds": (
            "histogram", "Time to first token where the engine reports it or streams",
            ("intent", "node", "deployment"), set(keys.values())),
        "murakkab_tokens": ("counter", "Tokens by intent, node, deployment and kind (prompt|completion)",
                            ("intent", "node", "deployment", "kind"), tokens),
        "murakkab_energy_joules": ("counter",
                                   "Energy attributed to calls; `label` says estimated (CPU-time model) or measured",
                                   ("intent", "node", "deployment", "label"),
                                   {("classify", "n1", "fast", "estimated"), ("", "", "slow", "measured")}),
        "murakkab_http_responses": ("counter", "HTTP responses of the chat endpoint by status code", ("code",),
                                    {("200",), ("429",), ("400",)}),
        "murakkab_admission_rejected": ("counter", "Requests refused with 429 by admission control", (), {()}),
        "murakkab_requests_inflight": ("gauge", "Chat requests being served", (), {()}),
        "murakkab_requests_queued": ("gauge", "Chat requests waiting for a serving slot", (), {()}),
    }
    f = scrape(fed())
    for name, (kind, help_, label_names, label_sets) in old.items():
        fam = f[name]
        assert (fam["type"], fam["help"]) == (kind, help_), name
        got = {tuple(dict(labels).get(n) for n in label_names) for _, labels in fam["samples"]}
        assert got == label_sets, name
        suffixes = {s[len(name):] for s, _ in fam["samples"]}
        assert suffixes == {"counter": {"_total"}, "gauge": {""}, "histogram": {"_bucket", "_count", "_sum"}}[kind]
        if kind != "gauge":  # counters and histograms carry a `_created` per series, as before
            assert len(f[name + "_created"]["samples"]) == len(label_sets), name
    live = {"murakkab_deployment_inflight", "murakkab_deployment_queued", "murakkab_deployment_window_latency_seconds",
            "murakkab_deployment_window_error_ratio", "murakkab_workflow_arrival_rate", "murakkab_replans"}
    assert set(f) == set(old) | {n + "_created" for n, v in old.items() if v[0] != "gauge"} | live


def test_observe_from_many_threads_loses_no_count() -> None:
    """Telemetry calls listeners outside its lock, from whichever thread made the call.

    Every thread reports the same new label sets in the same order, so they race to create each
    series and to add to it; with thread switches forced as often as possible, an unlocked
    accumulator loses calls here.
    """
    m, n, threads = ServerMetrics(), 300, 4
    recs = [record(deployment=f"d{i}", prompt_tokens=1) for i in range(n)]
    start = threading.Barrier(threads)

    def report() -> None:
        start.wait()
        for r in recs:
            m.observe(r)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=report) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(previous)
    f = scrape(m)
    ok = [v for (name, labels), v in f["murakkab_engine_calls"]["samples"].items() if ("outcome", "ok") in labels]
    prompt = [v for (name, labels), v in f["murakkab_tokens"]["samples"].items() if ("kind", "prompt") in labels]
    assert len(ok) == n and set(ok) == {threads} and set(prompt) == {threads}
