"""The discrete-event core: workflow runs walk their DAG over simulated replicas in virtual time.

A small heap-based core rather than simpy: the hot path is "a request finishes, its stage moves on",
and as plain heap events it takes less CPU than simpy's generator processes (on M/D/1, where both
express the model directly, simpy needed 2.3x the CPU time of this core, which also keeps the DAG
and energy books: benchmarks/sim_speed.py); nothing here needs simpy's process abstractions.

Events are (time, sequence, kind, payload). A replica's next completion is one event, replaced
(by bumping the replica's version) whenever its concurrency changes; stale events are skipped.
Everything random comes from one seeded `numpy` generator, so a seed gives the same run.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.engine import Rates, Replica, Request
from murakkab_lg.sim.workload import Arrivals, SimNode, Template, arrival_times, draw_count

__all__ = ("ControlState", "DeploymentStats", "LiveView", "NodeStats", "SimDeployment", "SimOutcome", "Simulation")

_ARRIVAL, _REPLICA, _TIMER, _READY, _CONTROL = range(5)


@dataclass
class SimDeployment:
    """A deployment as the simulator runs it: rates from its profile, replicas, where they sit."""

    name: str
    rates: Rates
    replicas: int = 1
    gpus_per_replica: int = 0  # tensor-parallel degree on GPUs; 0 on a CPU
    cpu_threads: int = 0  # llama.cpp threads per replica on a CPU host; 0 on GPUs
    host: str = "localhost"
    cold_start_s: float = 0.0
    label: str = "simulated"


@dataclass
class NodeStats:
    calls: int = 0
    latencies_s: list[float] = field(default_factory=list)
    energy_j: float = 0.0
    output_tokens: int = 0


@dataclass
class DeploymentStats:
    replicas: int
    gpus: int
    busy_s: float
    energy_j: float
    output_tokens: int


@dataclass
class SimOutcome:
    """Raw results of one run; `metrics.summarize` turns them into the reported figures."""

    started: int
    completed: int
    completion_s: np.ndarray
    horizon_s: float
    end_s: float
    energy_j: float
    nodes: dict[str, NodeStats]
    deployments: dict[str, DeploymentStats]
    events: int
    wall_s: float
    latency_slo_s: float | None


@dataclass
class ControlState:
    """What a controller sees at a tick: per deployment, replicas, running and queued sequences."""

    now_s: float
    replicas: dict[str, int]
    running: dict[str, int]
    queued: dict[str, int]
    completed: int
    recent_completion_s: list[float]


class _Run:
    __slots__ = ("left", "outstanding", "pending", "rounds", "start")

    def __init__(self, start: float, n: int) -> None:
        self.start = start
        self.pending: list[int] = [0] * n
        self.rounds: list[int] = [0] * n
        self.outstanding: list[int] = [0] * n
        self.left = n


class LiveView:
    """What a per-call chooser may look at, as the runtime's router sees it live: calls in flight
    (running + queued sequences) per deployment, and its recent per-call service time (an
    exponentially weighted mean of admission-to-completion times, queueing excluded, as
    runtime/live.py keeps it; None before the first sample or once the newest is older than
    `fresh_s`)."""

    def __init__(self, sim: Simulation, fresh_s: float = 5.0) -> None:
        self._sim = sim
        self.fresh_s = fresh_s

    def inflight(self, deployment: str) -> int:
        return sum(r.running + r.queued for r in self._sim.replicas[deployment])

    def service(self, deployment: str) -> float | None:
        got = self._sim.recent_latency.get(deployment)
        if got is None or self._sim.now - got[1] > self.fresh_s:
            return None
        return got[0]

    def available(self, deployment: str) -> bool:
        return deployment in self._sim.replicas

    @property
    def now(self) -> float:
        return self._sim.now


Chooser = Callable[[SimNode, LiveView], str]


class Simulation:
    """One simulated fleet running one workflow under one assignment of nodes to deployments.

    `assign` maps each LLM node to a deployment name (a plan), or is a function called for every
    request with the node and a `LiveView` (a per-request router, or the runtime's per-call spill
    decision driven by simulated telemetry). `host_cores` gives the cores of CPU hosts: replicas there
    that run at once with more threads than cores slow down in proportion.
    """

    def __init__(self, template: Template, deployments: list[SimDeployment], assign: dict[str, str] | Chooser,
                 *, seed: int = 0, host_cores: dict[str, int] | None = None,
                 controller: Callable[[ControlState], dict[str, int]] | None = None,
                 control_interval_s: float = 10.0, record_latencies: bool = False) -> None:
        self.t = template
        self.deps = {d.name: d for d in deployments}
        self.rng = np.random.default_rng(seed)
        self.record = record_latencies
        self.host_cores = host_cores or {}
        self.controller = controller
        self.control_interval_s = control_interval_s
        self.replicas: dict[str, list[Replica]] = {}
        for d in deployments:
            self.replicas[d.name] = [Replica(d.rates, name=f"{d.name}#{i}", ready_s=d.cold_start_s)
                                     for i in range(d.replicas)]
        self._owner: dict[int, str] = {id(r): d for d, rs in self.replicas.items() for r in rs}
        self.node_dep: list[str | None] = [None] * len(template.nodes)
        self.chooser: Chooser | None = None
        self.recent_latency: dict[str, tuple[float, float]] = {}  # deployment -> (EWMA, when); for a chooser
        self.view = LiveView(self)
        if callable(assign):
            self.chooser = assign
        else:
            for n in template.llm_nodes():
                if n.name not in assign:
                    raise ConfigError(f"no deployment assigned to node {n.name!r}")
                if assign[n.name] not in self.deps:
                    raise ConfigError(f"node {n.name!r} is assigned to {assign[n.name]!r}, which is not simulated")
                self.node_dep[n.index] = assign[n.name]
        self.heap: list = []
        self.seq = 0
        self.now = 0.0
        self.events = 0
        self.started = 0
        self.completed: list[float] = []
        self.nodes = {n.name: NodeStats() for n in template.nodes}
        self._stats = [self.nodes[n.name] for n in template.nodes]  # by node index, for the hot path
        self._cpu_hosts = {d.host for d in deployments if d.cpu_threads}

    # -- event plumbing -----------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: object = None, b: object = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def _reschedule(self, rep: Replica) -> None:
        rep.version += 1
        t = rep.next_event_s()
        if t is not None:
            self._push(t, _REPLICA, rep, rep.version)

    # -- runs ---------------------------------------------------------------------------------
    def _start_run(self, now: float) -> None:
        self.started += 1
        run = _Run(now, len(self.t.nodes))
        for n in self.t.nodes:
            run.pending[n.index] = n.n_preds
        for i in self.t.sources:
            self._start_node(run, self.t.nodes[i], now)

    def _draw(self, mean: float) -> int:
        if mean == int(mean):  # the common case needs no random number
            return int(mean)
        return max(1, draw_count(mean, self.rng.random()))

    def _start_node(self, run: _Run, node: SimNode, now: float) -> None:
        run.rounds[node.index] = self._draw(node.rounds)
        self._start_round(run, node, now)

    def _start_round(self, run: _Run, node: SimNode, now: float) -> None:
        if not node.is_llm:
            self._push(now + node.service_time_s, _TIMER, run, node.index)
            return
        width = self._draw(node.fanout)
        run.outstanding[node.index] = width
        dep = self.node_dep[node.index] or self.chooser(node, self.view)  # type: ignore[misc]
        reps = self.replicas[dep]
        rep = reps[0]
        if len(reps) > 1:  # least loaded replica (running + queued sequences), first ready on ties
            best = rep.running + rep.queued
            for r in reps:
                load = r.running + r.queued
                if load < best or (load == best and r.ready_s < rep.ready_s):
                    rep, best = r, load
        running = rep.running
        rep.advance(now)
        rep.submit(Request(node.input_tokens, node.output_tokens, width, run, node.index), now)
        if rep.running != running:  # queued behind a full batch: its next event is unchanged
            self._changed(rep, running > 0, now)

    def _round_done(self, run: _Run, node: SimNode, now: float) -> None:
        i = node.index
        run.rounds[i] -= 1
        if run.rounds[i] > 0:
            self._start_round(run, node, now)
            return
        run.left -= 1
        if run.left == 0:
            self.completed.append(now - run.start)
            if self._closed_left > 0:
                self._closed_left -= 1
                self._start_run(now)
            return
        for j in node.successors:
            run.pending[j] -= 1
            if run.pending[j] == 0:
                self._start_node(run, self.t.nodes[j], now)

    # -- replicas -----------------------------------------------------------------------------
    def _changed(self, rep: Replica, was_busy: bool, now: float) -> None:
        busy = rep.running > 0
        if busy != was_busy and self._cpu_hosts and self.deps[self._owner[id(rep)]].cpu_threads:
            self._reshare(self.deps[self._owner[id(rep)]].host, now)
        self._reschedule(rep)

    def _reshare(self, host: str, now: float) -> None:
        cores = self.host_cores.get(host)
        if not cores:
            return
        on_host = [(r, self.deps[d].cpu_threads) for d, rs in self.replicas.items()
                   if self.deps[d].cpu_threads and self.deps[d].host == host for r in rs]
        demand = sum(th for r, th in on_host if r.running > 0)
        speed = min(1.0, cores / demand) if demand else 1.0
        for r, _ in on_host:
            if r.speed != speed:
                r.advance(now)
                r.speed = speed
                self._reschedule(r)

    def _on_replica(self, rep: Replica, now: float) -> None:
        was_busy = rep.running > 0
        rep.advance(now)
        done = rep.pop_finished(now)
        nodes, stats = self.t.nodes, self._stats
        for req in done:
            node = nodes[req.tag]
            st = stats[req.tag]
            st.calls += req.weight
            st.energy_j += req.energy_j
            st.output_tokens += req.output_tokens * req.weight
            if self.record:
                st.latencies_s.extend([now - req.submitted_s] * req.weight)
            if self.chooser is not None:
                dep = self._owner[id(rep)]
                old = self.recent_latency.get(dep)
                lat = now - req.admitted_s
                self.recent_latency[dep] = (lat if old is None else 0.8 * old[0] + 0.2 * lat, now)
            run = req.owner
            run.outstanding[req.tag] -= req.weight  # type: ignore[attr-defined]
            if run.outstanding[req.tag] == 0:  # type: ignore[attr-defined]
                self._round_done(run, node, now)  # type: ignore[arg-type]
        self._changed(rep, was_busy, now)

    # -- control ------------------------------------------------------------------------------
    def _control(self, now: float) -> None:
        assert self.controller is not None
        state = ControlState(
            now_s=now, replicas={d: len(rs) for d, rs in self.replicas.items()},
            running={d: sum(r.running for r in rs) for d, rs in self.replicas.items()},
            queued={d: sum(r.queued for r in rs) for d, rs in self.replicas.items()},
            completed=len(self.completed), recent_completion_s=self.completed[-200:])
        for dep, want in self.controller(state).items():
            self._scale(dep, max(1, want), now)

    def _scale(self, dep: str, want: int, now: float) -> None:
        reps, d = self.replicas[dep], self.deps[dep]
        while len(reps) < want:  # scale out: a new replica after its cold start
            r = Replica(d.rates, name=f"{dep}#{len(reps)}", ready_s=now + d.cold_start_s, last_s=now)
            reps.append(r)
            self._owner[id(r)] = dep
            self._push(r.ready_s, _READY, r)
        while len(reps) > want:  # scale in: retire an idle replica, if any
            idle = next((r for r in reversed(reps) if r.running == 0 and not r.queue), None)
            if idle is None:
                break
            idle.advance(now)
            self._retired_energy += idle.energy_j
            self._retired_gpu_s += (now - idle.ready_s + d.cold_start_s) * d.gpus_per_replica
            reps.remove(idle)

    # -- main loop ----------------------------------------------------------------------------
    def run(self, arrivals: Arrivals, *, drain_s: float | None = None,
            progress: Callable[[float], None] | None = None) -> SimOutcome:
        """Simulate arrivals over `duration_s`, then let started runs finish (up to `drain_s` more)."""
        wall0 = time.perf_counter()
        self._closed_left = 0
        self._retired_energy = 0.0
        self._retired_gpu_s = 0.0
        horizon = arrivals.duration_s
        if arrivals.kind == "closed":
            total = arrivals.total or arrivals.clients
            first = min(arrivals.clients, total)
            self._closed_left = total - first
            for _ in range(first):
                self._start_run(0.0)
            times = np.empty(0)
        else:
            times = arrival_times(arrivals, self.rng)
            horizon = max(horizon, float(times[-1]) if len(times) else 0.0)
        for rs in self.replicas.values():
            for r in rs:
                if r.ready_s > 0:
                    self._push(r.ready_s, _READY, r)
        if self.controller is not None:
            self._push(self.control_interval_s, _CONTROL)
        limit = horizon + (drain_s if drain_s is not None else max(600.0, horizon))
        times = times.tolist()
        ai, n_arr = 0, len(times)
        heap = self.heap
        next_tick = 0.0
        step = horizon / 100 if progress else math.inf
        while True:
            t_arr = times[ai] if ai < n_arr else math.inf
            if heap and heap[0][0] < t_arr:
                t, _, kind, a, b = heapq.heappop(heap)
                if t > limit:
                    break
                self.now = t
                if kind == _REPLICA:
                    if b == a.version:
                        self._on_replica(a, t)
                elif kind == _TIMER:
                    self._round_done(a, self.t.nodes[b], t)
                elif kind == _READY:
                    a.become_ready(t)
                    self._reschedule(a)
                elif kind == _CONTROL and (t < horizon or self.started > len(self.completed)):
                    self._control(t)
                    self._push(t + self.control_interval_s, _CONTROL)
            elif ai < n_arr:
                self.now = t_arr
                ai += 1
                self._start_run(self.now)
            else:
                break
            self.events += 1
            if self.now >= next_tick and progress is not None:
                progress(min(self.now, horizon))
                next_tick = self.now + step
        return self._outcome(horizon, time.perf_counter() - wall0, arrivals)

    def _outcome(self, horizon: float, wall: float, arrivals: Arrivals) -> SimOutcome:
        end = self.now
        if arrivals.kind == "closed":
            horizon = end
        deps, total = {}, self._retired_energy
        for name, rs in self.replicas.items():
            d = self.deps[name]
            for r in rs:
                r.advance(end)
            e = sum(r.energy_j for r in rs)
            total += e
            deps[name] = DeploymentStats(replicas=len(rs), gpus=len(rs) * d.gpus_per_replica,
                                         busy_s=sum(r.busy_s for r in rs), energy_j=e,
                                         output_tokens=sum(r.tokens_out for r in rs))
        return SimOutcome(started=self.started, completed=len(self.completed),
                          completion_s=np.array(self.completed), horizon_s=horizon, end_s=end, energy_j=total,
                          nodes=self.nodes, deployments=deps, events=self.events, wall_s=wall,
                          latency_slo_s=self.t.latency_slo_s)

