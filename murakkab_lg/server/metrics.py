"""`/metrics` in the Prometheus text format, fed by the Runtime's telemetry.

Why from telemetry: the Runtime records one CallRecord per engine call (latency, tokens, energy with
its `estimated`/`measured` label) whoever made the call, so the server subscribes to that stream
instead of timing requests a second time. Requests that never reach an engine (rejected by
admission control, malformed, unknown model) are counted at the HTTP layer by status code.

Each server gets its own `CollectorRegistry`, so two apps in one process (tests) never share or
double-register series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from murakkab_lg.runtime.status import RuntimeStatus
from murakkab_lg.runtime.telemetry import CallRecord

__all__ = ("CONTENT_TYPE_LATEST", "ServerMetrics")

_LABELS = ("intent", "node", "deployment")
# From 1 ms (a gateway hop) to 2 minutes (a long CPU generation).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServerMetrics:
    """The series one server exports; `observe` is a Telemetry listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter("murakkab_engine_calls", "Engine calls by intent, node, deployment and outcome",
                             (*_LABELS, "outcome"), registry=r)
        self.latency = Histogram("murakkab_engine_call_latency_seconds",
                                 "Engine call latency (request sent to last byte), successful calls",
                                 _LABELS, buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("murakkab_engine_time_to_first_token_seconds",
                              "Time to first token where the engine reports it or streams", _LABELS,
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("murakkab_tokens", "Tokens by intent, node, deployment and kind (prompt|completion)",
                              (*_LABELS, "kind"), registry=r)
        self.energy = Counter("murakkab_energy_joules",
                              "Energy attributed to calls; `label` says estimated (CPU-time model) or measured",
                              (*_LABELS, "label"), registry=r)
        self.http = Counter("murakkab_http_responses", "HTTP responses of the chat endpoint by status code",
                            ("code",), registry=r)
        self.rejected = Counter("murakkab_admission_rejected", "Requests refused with 429 by admission control",
                                registry=r)
        self.inflight = Gauge("murakkab_requests_inflight", "Chat requests being served", registry=r)
        self.queued = Gauge("murakkab_requests_queued", "Chat requests waiting for a serving slot", registry=r)
        self._series: dict[tuple[str, str, str], tuple] = {}
        # Live state (Runtime.status()), refreshed at each scrape: gauges over the status window.
        self.live_status: Callable[[], RuntimeStatus] | None = None
        self.dep_inflight = Gauge("murakkab_deployment_inflight", "Calls in flight on a deployment's replicas",
                                  ("deployment",), registry=r)
        self.dep_queued = Gauge("murakkab_deployment_queued", "Calls past the engines' slots, waiting inside them",
                                ("deployment",), registry=r)
        self.dep_latency = Gauge("murakkab_deployment_window_latency_seconds",
                                 "Latency of successful calls over the live window, by quantile",
                                 ("deployment", "quantile"), registry=r)
        self.dep_errors = Gauge("murakkab_deployment_window_error_ratio", "Share of failed calls over the live window",
                                ("deployment",), registry=r)
        self.wf_rate = Gauge("murakkab_workflow_arrival_rate", "Observed workflow runs per second (live window)",
                             ("workflow",), registry=r)
        self.replans = Gauge("murakkab_replans", "Re-plans made since the server started", ("workflow",), registry=r)

    def _children(self, key: tuple[str, str, str]) -> tuple:
        # labels() takes a lock and hashes each time; cache the children per label set.
        got = self._series.get(key)
        if got is None:
            got = (self.calls.labels(*key, "ok"), self.calls.labels(*key, "error"), self.latency.labels(*key),
                   self.ttft.labels(*key), self.tokens.labels(*key, "prompt"), self.tokens.labels(*key, "completion"))
            self._series[key] = got
        return got

    def observe(self, rec: CallRecord) -> None:
        key = (rec.intent or "", rec.node or "", rec.deployment)
        ok, err, latency, ttft, prompt, completion = self._children(key)
        if rec.energy_j is not None:  # failed calls burn energy too
            self.energy.labels(*key, rec.energy_label or "estimated").inc(rec.energy_j)
        if not rec.ok:
            err.inc()
            return
        ok.inc()
        latency.observe(rec.latency_s)
        if rec.ttft_s is not None:
            ttft.observe(rec.ttft_s)
        if rec.prompt_tokens:
            prompt.inc(rec.prompt_tokens)
        if rec.completion_tokens:
            completion.inc(rec.completion_tokens)

    def refresh(self, status: RuntimeStatus) -> None:
        """Set the live gauges from one status (label sets that vanished are dropped)."""
        for g in (self.dep_inflight, self.dep_queued, self.dep_latency, self.dep_errors, self.wf_rate, self.replans):
            g.clear()
        for name, d in status.deployments.items():
            self.dep_inflight.labels(name).set(d.inflight)
            self.dep_queued.labels(name).set(d.queued)
            w = d.window
            if w is not None:
                self.dep_errors.labels(name).set(w.error_rate)
                for q, v in (("0.5", w.p50_s), ("0.95", w.p95_s)):
                    if v is not None:
                        self.dep_latency.labels(name, q).set(v)
        for name, wf in status.workflows.items():
            self.replans.labels(name).set(wf.replans)
            if wf.observed is not None and wf.observed.arrival_rate_per_s is not None:
                self.wf_rate.labels(name).set(wf.observed.arrival_rate_per_s)

    def render(self) -> bytes:
        if self.live_status is not None:
            self.refresh(self.live_status())
        return generate_latest(self.registry)
