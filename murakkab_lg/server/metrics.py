"""`/metrics` in the Prometheus text format, fed by the Runtime's telemetry.

Why from telemetry: the Runtime records one CallRecord per engine call (latency, tokens, energy with
its `estimated`/`measured` label) whoever made the call, so the server subscribes to that stream
instead of timing requests a second time. Requests that never reach an engine (rejected by
admission control, malformed, unknown model) are counted at the HTTP layer by status code.

Why plain numbers and a collector: the per-call series are updated on every request, and the chat
endpoint is measured against a bare forwarding hop. prometheus_client's Counter and Histogram take
a lock per update and go through several calls each (about 5 us per request, measured), so the
hot path only adds to plain per-label-set accumulators, and `collect()` turns them into metric
families when `/metrics` is scraped, which is rare next to requests. The names, help texts, labels
and `_created` samples are those the Counter/Histogram/Gauge objects printed before.

Each server gets its own `CollectorRegistry`, so two apps in one process (tests) never share or
double-register series.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client import metrics as _prometheus_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from murakkab_lg.runtime.status import RuntimeStatus
from murakkab_lg.runtime.telemetry import CallRecord

__all__ = ("CONTENT_TYPE_LATEST", "ServerMetrics")

_LABELS = ("intent", "node", "deployment")
# From 1 ms (a gateway hop) to 2 minutes (a long CPU generation).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_LE = (*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf")  # the `le` values prometheus_client prints

_Key = tuple[str, str, str]  # intent, node, deployment


class _Calls:
    """One (intent, node, deployment)'s totals; histograms are per-bucket counts, made cumulative at scrape."""

    __slots__ = ("completion", "created", "errors", "latency", "latency_sum", "ok", "prompt", "ttft", "ttft_sum")

    def __init__(self) -> None:
        self.ok = self.errors = self.prompt = self.completion = 0
        self.latency = [0] * len(_LE)  # the last slot is +Inf
        self.ttft = [0] * len(_LE)
        self.latency_sum = self.ttft_sum = 0.0
        self.created = time.time()


def _created(t: float) -> float | None:
    # prometheus_client.disable_created_metrics() (or PROMETHEUS_DISABLE_CREATED_SERIES) drops them.
    return t if getattr(_prometheus_metrics, "_use_created", True) else None


def _histogram(family: HistogramMetricFamily, labels: list[str], counts: list[int], total: float,
               created: float | None) -> None:
    family.add_metric(labels, list(zip(_LE, accumulate(counts), strict=True)), total)
    if created is not None:
        family.add_sample(family.name + "_created", dict(zip(_LABELS, labels, strict=True)), created)


class ServerMetrics(Collector):
    """The series one server exports; `observe` is a Telemetry listener, `collect` runs at scrape.

    Thread-safety: Telemetry calls its listeners outside its own lock, from whatever thread made
    the engine call (the event loop for the server, a LangGraph worker thread for a sync
    `Runtime.complete` on the same Runtime), and `+=` is not atomic across threads, so `observe`
    and the scrape share one uncontended lock. `response()` and the admission numbers are touched
    only by the server's event loop (one thread), so they take none.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._calls: dict[_Key, _Calls] = {}
        self._energy: dict[tuple[_Key, str], list[float]] = {}  # (key, label) -> [joules, created]
        self._http: dict[int, int] = {}  # status -> responses
        self._http_created: dict[int, float] = {}
        # Admission control (serving.Admission) adds to these on the event loop.
        self.rejected = 0
        self.inflight = 0
        self.queued = 0
        self._rejected_created = time.time()
        self.registry.register(self)
        # Live state (Runtime.status()), refreshed at each scrape: gauges over the status window.
        r = self.registry
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

    def observe(self, rec: CallRecord) -> None:
        key = (rec.intent or "", rec.node or "", rec.deployment)
        with self._lock:
            s = self._calls.get(key)
            if s is None:
                s = self._calls[key] = _Calls()
            if rec.energy_j is not None:  # failed calls burn energy too
                ek = (key, rec.energy_label or "estimated")
                e = self._energy.get(ek)
                if e is None:
                    e = self._energy[ek] = [0.0, time.time()]
                e[0] += rec.energy_j
            if not rec.ok:
                s.errors += 1
                return
            s.ok += 1
            latency = rec.latency_s
            s.latency[bisect_left(_LATENCY_BUCKETS, latency)] += 1  # `le`: a value on a bound counts in it
            s.latency_sum += latency
            ttft = rec.ttft_s
            if ttft is not None:
                s.ttft[bisect_left(_LATENCY_BUCKETS, ttft)] += 1
                s.ttft_sum += ttft
            s.prompt += rec.prompt_tokens
            s.completion += rec.completion_tokens

    def response(self, status: int) -> None:
        """Count one chat response by status code (event loop only, see the class docstring)."""
        n = self._http.get(status)
        if n is None:
            self._http_created[status] = time.time()
            n = 0
        self._http[status] = n + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # a consistent copy; the families are built outside the lock
            calls = [(k, s.ok, s.errors, s.prompt, s.completion, list(s.latency), s.latency_sum, list(s.ttft),
                      s.ttft_sum, s.created) for k, s in self._calls.items()]
            energy = [(k, label, e[0], e[1]) for (k, label), e in self._energy.items()]
        count = CounterMetricFamily("murakkab_engine_calls", "Engine calls by intent, node, deployment and outcome",
                                    labels=(*_LABELS, "outcome"))
        latency = HistogramMetricFamily("murakkab_engine_call_latency_seconds",
                                        "Engine call latency (request sent to last byte), successful calls",
                                        labels=_LABELS)
        ttft = HistogramMetricFamily("murakkab_engine_time_to_first_token_seconds",
                                     "Time to first token where the engine reports it or streams", labels=_LABELS)
        tokens = CounterMetricFamily("murakkab_tokens",
                                     "Tokens by intent, node, deployment and kind (prompt|completion)",
                                     labels=(*_LABELS, "kind"))
        for key, ok, errors, prompt, completion, lat, lat_sum, first, first_sum, t in calls:
            labels, created = list(key), _created(t)
            count.add_metric([*labels, "ok"], ok, created=created)
            count.add_metric([*labels, "error"], errors, created=created)
            _histogram(latency, labels, lat, lat_sum, created)
            _histogram(ttft, labels, first, first_sum, created)
            tokens.add_metric([*labels, "prompt"], prompt, created=created)
            tokens.add_metric([*labels, "completion"], completion, created=created)
        joules = CounterMetricFamily("murakkab_energy_joules",
                                     "Energy attributed to calls; `label` says estimated (CPU-time model) or measured",
                                     labels=(*_LABELS, "label"))
        for key, label, value, t in energy:
            joules.add_metric([*key, label], value, created=_created(t))
        http = CounterMetricFamily("murakkab_http_responses", "HTTP responses of the chat endpoint by status code",
                                   labels=("code",))
        for status, n in list(self._http.items()):
            http.add_metric([str(status)], n, created=_created(self._http_created[status]))
        yield from (count, latency, ttft, tokens, joules, http)
        yield CounterMetricFamily("murakkab_admission_rejected", "Requests refused with 429 by admission control",
                                  value=self.rejected, created=_created(self._rejected_created))
        yield GaugeMetricFamily("murakkab_requests_inflight", "Chat requests being served", value=self.inflight)
        yield GaugeMetricFamily("murakkab_requests_queued", "Chat requests waiting for a serving slot",
                                value=self.queued)

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
