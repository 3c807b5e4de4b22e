"""Live state: windowed statistics of what the runtime actually observes, fed by call telemetry.

Why a separate module: the plan predicts latency, tokens, calls and load from profiles and
annotations; the router and the controller (`control.py`) need the *observed* values to notice
when those predictions stop holding. It follows the runtime's Telemetry (`follow`): every engine
call (from the library, wrapped graphs or the server) feeds it without timing anything twice, and
the records are read when the live state is asked for (a snapshot, the router's `service_s`), not
on every call, so a runtime whose live state nobody reads (a fixed plan) pays nothing for it.

Memory is bounded: per key a fixed-size ring of recent samples (`samples`), and at most
`max_keys` nodes and workflows (least recently seen dropped first), so a server that receives
client-chosen workflow names cannot grow without bound. Recording is O(1) (a few deque appends
and dict updates under one lock); percentiles are computed only when a snapshot is asked for.

The router's per-call read, `service_s`, is O(1) too: an exponentially weighted mean of the
deployment's successful call service times (latency, less the share spent queueing when more
calls were in flight than the engine has slots, where the slots are known), forgotten when its
newest sample is older than `fresh_s` (so a deployment that stopped receiving traffic is judged
by its prediction again, which is how traffic returns to a primary once it recovers).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from murakkab_lg.runtime.telemetry import CallRecord, Telemetry

__all__ = ("DeploymentStats", "LiveState", "NodeStats", "Snapshot", "WorkflowStats")


class Frozen(BaseModel):
    """Base of the live-state and status values: immutable snapshots."""

    model_config = ConfigDict(frozen=True)


class DeploymentStats(Frozen):
    """One deployment over the window. Latencies in seconds, of successful calls; None: no sample."""

    deployment: str
    calls: int
    errors: int
    error_rate: float
    calls_per_s: float
    p50_s: float | None
    p95_s: float | None
    ttft_p50_s: float | None
    tpot_p50_s: float | None  # time per output token after the first
    service_s: float | None  # the router's current estimate (EWMA), None when stale


class NodeStats(Frozen):
    """One workflow node over the window: what its calls looked like, against its annotation."""

    workflow: str
    node: str
    calls: int
    calls_per_s: float
    mean_input_tokens: float | None
    mean_output_tokens: float | None
    calls_per_run: float | None  # None: runs of this workflow are not reported (server mode)
    escalation_rate: float | None  # share of calls that escalated past the first cascade stage
    deployments: dict[str, int]  # who served the window's calls


class WorkflowStats(Frozen):
    workflow: str
    runs: int  # runs started within the window (reported by wrap())
    arrival_rate_per_s: float | None  # runs per second; None: no run reported


class Snapshot(Frozen):
    """Everything `LiveState` knows at one instant (`at`, wall clock)."""

    at: float
    window_s: float
    deployments: dict[str, DeploymentStats]
    nodes: tuple[NodeStats, ...]
    workflows: dict[str, WorkflowStats]

    def node(self, workflow: str, node: str) -> NodeStats | None:
        for n in self.nodes:
            if n.workflow == workflow and n.node == node:
                return n
        return None


@dataclass
class _Dep:
    samples: deque = field(default_factory=deque)  # (t, latency, ttft, tpot, ok)
    ewma: float | None = None
    last_ok: float = 0.0


@dataclass
class _Node:
    samples: deque = field(default_factory=deque)  # (t, tin, tout, stage, escalated, deployment, ok, retries, check)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs.sort()
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


class LiveState:
    """Windowed per-deployment, per-node and per-workflow statistics; thread-safe."""

    def __init__(self, *, window_s: float = 30.0, samples: int = 512, max_keys: int = 1024,
                 fresh_s: float = 5.0, alpha: float = 0.3) -> None:
        self.window_s = window_s
        self.samples = samples
        self.max_keys = max_keys
        self.fresh_s = fresh_s
        self.alpha = alpha
        self._lock = threading.Lock()
        self._deps: dict[str, _Dep] = {}
        self._nodes: OrderedDict[tuple[str, str], _Node] = OrderedDict()
        self._runs: OrderedDict[str, deque] = OrderedDict()
        self.slots: dict[str, int] = {}  # deployment -> engine slots per replica, where known
        self._source: Telemetry | None = None
        self._mark = 0

    def follow(self, telemetry: Telemetry) -> None:
        """Take every record `telemetry` makes from now on (read when the live state is read)."""
        self._source, self._mark = telemetry, telemetry.mark()

    def _sync(self) -> None:
        """Under the lock: take the records made since the last read, each at the time it ended."""
        if self._source is None:
            return
        recs, self._mark = self._source.read(self._mark)
        if recs:
            mono, wall = time.monotonic(), time.time()
            for rec in recs:
                self._add(rec, min(mono, mono - (wall - rec.started_at - rec.latency_s)))

    # -- feeding ------------------------------------------------------------------------------
    def record(self, rec: CallRecord) -> None:
        """One engine call, ended now (every try and every cascade stage is one record)."""
        with self._lock:
            self._add(rec, time.monotonic())

    def _add(self, rec: CallRecord, now: float) -> None:
        tpot = None
        if rec.ttft_s is not None and rec.completion_tokens > 1:
            tpot = max(0.0, rec.latency_s - rec.ttft_s) / (rec.completion_tokens - 1)
        dep = self._deps.get(rec.deployment)
        if dep is None:
            dep = self._deps[rec.deployment] = _Dep(deque(maxlen=self.samples))
        dep.samples.append((now, rec.latency_s, rec.ttft_s, tpot, rec.ok))
        if rec.ok:
            # service time: past the engine's slots the call also waited for its turn
            per = self.slots.get(rec.deployment)
            s = rec.latency_s * per / rec.concurrency if per and rec.concurrency > per else rec.latency_s
            stale = dep.ewma is None or now - dep.last_ok > self.fresh_s
            dep.ewma = s if stale else dep.ewma + self.alpha * (s - dep.ewma)
            dep.last_ok = now
        if rec.node is not None:
            key = (rec.workflow or "", rec.node)
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = _Node(deque(maxlen=self.samples))
                if len(self._nodes) > self.max_keys:
                    self._nodes.popitem(last=False)
            else:
                self._nodes.move_to_end(key)
            node.samples.append((now, rec.prompt_tokens, rec.completion_tokens, rec.stage, rec.escalated,
                                 rec.deployment, rec.ok, rec.retries, rec.check))

    def run_started(self, workflow: str) -> None:
        """A wrapped graph run began (the per-workflow arrival rate and calls per run count these)."""
        now = time.monotonic()
        with self._lock:
            runs = self._runs.get(workflow)
            if runs is None:
                runs = self._runs[workflow] = deque(maxlen=self.samples)
                if len(self._runs) > self.max_keys:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(workflow)
            runs.append(now)

    # -- the router's O(1) read -----------------------------------------------------------------
    def service_s(self, deployment: str, now: float | None = None) -> float | None:
        """The deployment's recent per-call latency (EWMA); None when it has no fresh sample."""
        if self._source is not None:
            with self._lock:
                self._sync()
        return self._ewma(deployment, time.monotonic() if now is None else now)

    def _ewma(self, deployment: str, now: float) -> float | None:
        dep = self._deps.get(deployment)
        if dep is None or dep.ewma is None or now - dep.last_ok > self.fresh_s:
            return None
        return dep.ewma

    # -- snapshots ----------------------------------------------------------------------------
    def _span(self, first: float, now: float) -> float:
        """The time the window's rates are over: the whole window, or less while it fills (at least
        a second, so a burst of calls in the first instant is not read as thousands per second)."""
        return max(min(self.window_s, now - first), 1.0)

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        lo = now - self.window_s
        with self._lock:
            self._sync()
            deps = {k: [s for s in d.samples if s[0] >= lo] for k, d in self._deps.items()}
            ewma = {k: self._ewma(k, now) for k in self._deps}
            nodes = {k: [s for s in n.samples if s[0] >= lo] for k, n in self._nodes.items()}
            runs = {k: [t for t in r if t >= lo] for k, r in self._runs.items()}
            first = {k: (r[0] if r else now) for k, r in self._runs.items()}
        dstats = {}
        for name, ss in deps.items():
            ok = [s for s in ss if s[4]]
            errors = len(ss) - len(ok)
            dstats[name] = DeploymentStats(
                deployment=name, calls=len(ss), errors=errors, error_rate=errors / len(ss) if ss else 0.0,
                calls_per_s=len(ss) / self._span(ss[0][0], now) if ss else 0.0,
                p50_s=_pct([s[1] for s in ok], 0.5), p95_s=_pct([s[1] for s in ok], 0.95),
                ttft_p50_s=_pct([s[2] for s in ok if s[2] is not None], 0.5),
                tpot_p50_s=_pct([s[3] for s in ok if s[3] is not None], 0.5), service_s=ewma[name])
        wstats = {wf: WorkflowStats(workflow=wf, runs=len(ts),
                                    arrival_rate_per_s=len(ts) / self._span(min(first[wf], ts[0]), now) if ts else None)
                  for wf, ts in runs.items()}
        nstats = []
        for (wf, name), ss in nodes.items():
            if not ss:
                continue
            calls = sum(1 for s in ss if s[3] == 0 and s[7] == 0)  # first try of the first stage: one per call
            done = [s for s in ss if s[3] == 0 and s[6]]  # answered first stages: what the node asked for
            checked = [s for s in done if s[8] is not None]
            served: dict[str, int] = {}
            for s in ss:
                served[s[5]] = served.get(s[5], 0) + 1
            runs_in = len(runs.get(wf, ()))
            nstats.append(NodeStats(
                workflow=wf, node=name, calls=calls, calls_per_s=calls / self._span(ss[0][0], now),
                mean_input_tokens=_mean(s[1] for s in done), mean_output_tokens=_mean(s[2] for s in done),
                calls_per_run=calls / runs_in if runs_in else None,
                escalation_rate=sum(1 for s in checked if s[4]) / len(checked) if checked else None,
                deployments=served))
        return Snapshot(at=time.time(), window_s=self.window_s, deployments=dstats, nodes=tuple(nstats),
                        workflows=wstats)
