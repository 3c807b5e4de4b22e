"""The adaptive decisions as pure functions: (plan, live state, config) -> what to do.

Nothing here starts engines, sleeps or reads a clock: the Runtime calls these with real engines
and `time.monotonic()`, the simulator with simulated ones and simulated time, and the tests with
plain values. Two loops use them:

* **Per call, the router** (`choose`): a node's planned deployment serves it unless its predicted
  completion, ``service time x (calls ahead + 1) / slots``, would break the node's per-call
  latency budget; then the call spills to the best alternative (`NodeChoice.alternatives`, all of
  which meet the node's floor) whose predicted completion fits, or, when none fits, to whichever
  finishes first. Never to a deployment below the floor. Service time is the deployment's
  observed recent latency (live.py), or the plan's prediction where nothing fresh was observed:
  that is how traffic goes back to a primary that recovered, one probe per freshness period.
* **Every controller tick, re-planning** (`drift`, `step`, `with_observed`, `swap`): when the
  observed tokens, calls per run, arrival rate or service times differ from what the plan assumed
  by more than `drift_ratio`, for `sustain_s` without a break, and the last re-plan is at least
  `dwell_s` old, the workflow is re-planned with the observed values and the new plan applied
  by drain-and-swap (`swap` says what to start and what to drain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from murakkab_lg.runtime.live import Snapshot
from murakkab_lg.spec import Deployment, LlamaCppSettings, Plan, VllmSettings, Workflow

__all__ = (
    "AdaptiveConfig",
    "ControllerState",
    "NodeRoute",
    "Option",
    "ReplanEvent",
    "Swap",
    "choose",
    "drift",
    "node_routes",
    "slots_of",
    "slowdowns",
    "step",
    "swap",
    "with_observed",
)


class AdaptiveConfig(BaseModel):
    """How the runtime adapts. Times in seconds; ratios are observed / assumed (and its inverse)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spill: bool = True  # per-call spill to alternatives when the planned deployment would break its budget
    replan: bool = True  # the controller re-plans on sustained drift
    fresh_s: float = Field(default=5.0, gt=0)  # an observed service time older than this is forgotten
    window_s: float = Field(default=30.0, gt=0)  # live statistics' window
    interval_s: float = Field(default=1.0, gt=0)  # controller tick
    drift_ratio: float = Field(default=1.5, gt=1.0)
    sustain_s: float = Field(default=5.0, ge=0)  # drift must last this long before a re-plan
    dwell_s: float = Field(default=30.0, ge=0)  # at least this long between two re-plans of a workflow
    min_calls: int = Field(default=10, ge=1)  # samples a node needs before its figures count
    warm_alternatives: int = Field(default=1, ge=0)  # alternatives per node started with the plan
    drain_timeout_s: float = Field(default=60.0, gt=0)
    # The share of a node's latency budget the router plans to fill: predictions miss client and
    # network time and queueing jitter, so a call spills before its prediction reaches the SLO.
    headroom: float = Field(default=0.8, gt=0, le=1.0)


@dataclass(frozen=True)
class Option:
    """A deployment a node may use, with its predicted per-call latency and engine slots."""

    deployment: str
    predicted_s: float
    slots: int | None  # concurrent calls the engine serves at once; None: unknown (hosted API)


@dataclass(frozen=True)
class NodeRoute:
    """What the router needs for one node: the planned deployment, its ranked alternatives, its budget."""

    primary: Option
    alternatives: tuple[Option, ...] = ()
    budget_s: float | None = None  # per-call latency share; None: no SLO, never spill


class ReplanEvent(BaseModel):
    """One re-plan: when, why, and which nodes moved (node -> (old, new) deployment)."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    at: float  # wall clock
    reasons: tuple[str, ...]
    moved: dict[str, tuple[str, str]]
    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    lost_calls: int = 0  # calls that failed because of the swap (drain-and-swap keeps this 0)


class ControllerState(BaseModel):
    """Per workflow: since when it drifts (None: it does not), and when it was last re-planned."""

    model_config = ConfigDict(frozen=True)

    drifting_since: float | None = None
    last_replan: float | None = None


@dataclass(frozen=True)
class Swap:
    start: tuple[str, ...]  # deployments the new plan needs that are not running: healthy before traffic moves
    stop: tuple[str, ...]  # deployments nothing uses any more: drained, then stopped
    moved: dict[str, tuple[str, str]]


# -- routing ------------------------------------------------------------------------------------
def slots_of(d: Deployment) -> int | None:
    """Calls a deployment serves at once, over all replicas; None where the engine does not say."""
    e = d.engine
    if isinstance(e, LlamaCppSettings):
        return e.parallel * d.replicas
    if isinstance(e, VllmSettings):
        return e.max_num_seqs * d.replicas
    return None


def _per_call(workflow: Workflow, node: str, latency_s: float) -> float:
    it = workflow.node(node).intent
    return latency_s / (it.expected_calls * it.expected_iterations)


def node_routes(plan: Plan, workflow: Workflow, slots: Mapping[str, int | None],
                headroom: float = 1.0) -> dict[str, NodeRoute]:
    """Per node, its route: budgets come from the node's own SLO, else its share of the workflow's,
    times `headroom`.

    A node's share of an end-to-end SLO is the SLO times its predicted latency over the sum of
    the predicted latencies (a conservative split: the critical path is never longer than the sum).
    """
    total = sum(c.prediction.latency_s for c in plan.choices) or 1.0
    out = {}
    for c in plan.choices:
        intent = workflow.node(c.node).intent
        runs = intent.expected_calls * intent.expected_iterations
        if intent.latency_slo_s is not None:
            budget: float | None = intent.latency_slo_s / runs
        elif workflow.latency_slo_s is not None:
            budget = workflow.latency_slo_s * (c.prediction.latency_s / total) / runs
        else:
            budget = None
        out[c.node] = NodeRoute(
            primary=Option(c.deployment, c.prediction.latency_s / runs, slots.get(c.deployment)),
            alternatives=tuple(Option(a.deployment, a.prediction.latency_s / runs, slots.get(a.deployment))
                               for a in c.alternatives),
            budget_s=None if budget is None else budget * headroom)
    return out


def completion_s(option: Option, service_s: float | None, inflight: int) -> float:
    """Predicted completion of one more call: service time x (calls ahead of it + 1) / slots."""
    s = option.predicted_s if service_s is None else service_s
    if option.slots is None or inflight < option.slots:
        return s
    return s * (inflight + 1) / option.slots


def choose(route: NodeRoute, service: Callable[[str], float | None], inflight: Callable[[str], int],
           available: Callable[[str], bool]) -> str:
    """The deployment for one call (see the module docstring). O(alternatives)."""
    p = route.primary
    if route.budget_s is None or not route.alternatives:
        return p.deployment
    best_t = completion_s(p, service(p.deployment), inflight(p.deployment))
    if best_t <= route.budget_s:
        return p.deployment
    best = p.deployment
    for alt in route.alternatives:
        if not available(alt.deployment):
            continue
        t = completion_s(alt, service(alt.deployment), inflight(alt.deployment))
        if t <= route.budget_s:
            return alt.deployment
        if t < best_t:
            best, best_t = alt.deployment, t
    return best


# -- re-planning --------------------------------------------------------------------------------
def _off(observed: float, assumed: float, ratio: float) -> bool:
    if assumed <= 0 or observed <= 0:
        return False
    r = observed / assumed
    return r > ratio or r < 1.0 / ratio


def slowdowns(plan: Plan, workflow: Workflow, snap: Snapshot, cfg: AdaptiveConfig) -> dict[str, float]:
    """Planned deployments whose observed median latency is `drift_ratio` past the plan's per-call
    prediction (the largest over the nodes they serve), with the factor."""
    predicted: dict[str, float] = {}
    for c in plan.choices:
        p = _per_call(workflow, c.node, c.prediction.latency_s)
        predicted[c.deployment] = max(predicted.get(c.deployment, 0.0), p)
    out = {}
    for name, p in predicted.items():
        st = snap.deployments.get(name)
        if st is None or st.p50_s is None or st.calls - st.errors < cfg.min_calls or p <= 0:
            continue
        if st.p50_s / p > cfg.drift_ratio:
            out[name] = st.p50_s / p
    return out


def drift(plan: Plan, workflow: Workflow, snap: Snapshot, cfg: AdaptiveConfig) -> list[str]:
    """Why the plan's assumptions no longer hold (empty: they do), one readable reason each."""
    reasons = []
    ratio = cfg.drift_ratio
    for n in workflow.nodes:
        st = snap.node(workflow.name, n.name)
        if st is None or st.calls < cfg.min_calls:
            continue
        it = n.intent
        if st.mean_output_tokens is not None and _off(st.mean_output_tokens, it.expected_output_tokens, ratio):
            reasons.append(f"node {n.name!r}: {st.mean_output_tokens:.0f} output tokens per call observed, "
                           f"{it.expected_output_tokens} assumed")
        if st.mean_input_tokens is not None and _off(st.mean_input_tokens, it.expected_input_tokens, ratio):
            reasons.append(f"node {n.name!r}: {st.mean_input_tokens:.0f} input tokens per call observed, "
                           f"{it.expected_input_tokens} assumed")
        runs = it.expected_calls * it.expected_iterations
        if st.calls_per_run is not None and _off(st.calls_per_run, runs, ratio):
            reasons.append(f"node {n.name!r}: {st.calls_per_run:.2f} calls per run observed, {runs:g} assumed")
    wf = snap.workflows.get(workflow.name)
    if wf is not None and wf.arrival_rate_per_s is not None and wf.runs >= cfg.min_calls:
        if workflow.arrival_rate_per_s is not None:
            if _off(wf.arrival_rate_per_s, workflow.arrival_rate_per_s, ratio):
                reasons.append(f"arrival rate {wf.arrival_rate_per_s:.2f}/s observed, "
                               f"{workflow.arrival_rate_per_s:g}/s assumed")
        else:
            span = sum(c.prediction.latency_s for c in plan.choices)
            if wf.arrival_rate_per_s * span > ratio:
                reasons.append(f"arrival rate {wf.arrival_rate_per_s:.2f}/s observed: runs overlap "
                               f"({wf.arrival_rate_per_s * span:.1f} at once), the plan assumed one at a time")
    for name, f in slowdowns(plan, workflow, snap, cfg).items():
        reasons.append(f"deployment {name!r}: median latency {f:.1f}x the plan's prediction")
    return reasons


def step(state: ControllerState, reasons: list[str], now: float, cfg: AdaptiveConfig) -> tuple[ControllerState, bool]:
    """Hysteresis: re-plan only after `sustain_s` of unbroken drift and `dwell_s` since the last re-plan."""
    if not reasons:
        return ControllerState(last_replan=state.last_replan), False
    since = state.drifting_since if state.drifting_since is not None else now
    due = (now - since >= cfg.sustain_s
           and (state.last_replan is None or now - state.last_replan >= cfg.dwell_s))
    if due:
        return ControllerState(drifting_since=None, last_replan=now), True
    return ControllerState(drifting_since=since, last_replan=state.last_replan), False


def with_observed(workflow: Workflow, snap: Snapshot, cfg: AdaptiveConfig) -> Workflow:
    """The workflow with its intents' assumptions replaced by what was observed (where enough was)."""
    nodes = []
    for n in workflow.nodes:
        st = snap.node(workflow.name, n.name)
        it = n.intent
        if st is not None and st.calls >= cfg.min_calls:
            upd: dict[str, object] = {}
            if st.mean_input_tokens is not None:
                upd["expected_input_tokens"] = round(st.mean_input_tokens)
            if st.mean_output_tokens is not None:
                upd["expected_output_tokens"] = max(1, round(st.mean_output_tokens))
            if st.calls_per_run is not None and st.calls_per_run > 0:
                upd["expected_calls"] = st.calls_per_run / it.expected_iterations
            if st.escalation_rate is not None:
                upd["escalation_rate"] = st.escalation_rate
            it = it.model_copy(update=upd)
        nodes.append(n.model_copy(update={"intent": it}))
    wf = snap.workflows.get(workflow.name)
    rate = workflow.arrival_rate_per_s
    if wf is not None and wf.arrival_rate_per_s is not None and wf.runs >= cfg.min_calls:
        rate = wf.arrival_rate_per_s
    return workflow.model_copy(update={"nodes": tuple(nodes), "arrival_rate_per_s": rate})


def swap(old: Plan, new: Plan, running: set[str], still_used: set[str]) -> Swap:
    """Drain-and-swap: start what the new plan needs, stop what only the old one used."""
    need = [d.name for d in new.deployments]
    start = tuple(n for n in need if n not in running)
    stop = tuple(d.name for d in old.deployments if d.name not in need and d.name not in still_used)
    moved = {}
    for c in new.choices:
        try:
            before = old.choice(c.node).deployment
        except KeyError:
            continue
        if before != c.deployment:
            moved[c.node] = (before, c.deployment)
    return Swap(start=start, stop=stop, moved=moved)
