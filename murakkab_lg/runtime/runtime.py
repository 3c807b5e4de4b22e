"""The Runtime: plans workflows, keeps the planned deployments running, and serves calls.

Everything above it (the LangGraph adapter, MurakkabChat, the HTTP server, the CLI) sends
OpenAI-format chat bodies plus a `Route` here; everything below it (policies, engines, profiles)
never sees LangGraph or HTTP clients of ours.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from murakkab_lg.backends.engines import create_engine
from murakkab_lg.backends.openai_http import SseBatch
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import ConfigError, RoutingError
from murakkab_lg.policies import Candidate, PlanningProblem, Policy, get_policy
from murakkab_lg.runtime import _cascade, control
from murakkab_lg.runtime import controller as control_loop
from murakkab_lg.runtime.admission import Admission, AdmissionLimits, RequestCaps
from murakkab_lg.runtime.breaker import BreakerPolicy
from murakkab_lg.runtime.control import AdaptiveConfig, NodeRoute, ReplanEvent
from murakkab_lg.runtime.failover import Attempt, Failover, RetryPolicy, meets_floor
from murakkab_lg.runtime.intent_memo import IntentMemo
from murakkab_lg.runtime.live import LiveState
from murakkab_lg.runtime.replicas import EngineFactory, ReplicaPool
from murakkab_lg.runtime.status import RuntimeStatus, build_status
from murakkab_lg.runtime.telemetry import CallRecord, Telemetry
from murakkab_lg.runtime.tool_routing import TOOL_USE, carries_tools, route_tool_call
from murakkab_lg.spec import Deployment, Intent, Inventory, Objective, Plan, VllmSettings, Workflow, WorkflowNode
from murakkab_lg.wire import Route

__all__ = ("Route", "Runtime", "Served")

Body = dict[str, Any]
_STRIP = ("murakkab",)
_INTENT_ROUTES = 1024  # distinct (intent, constraints) routes and fallbacks remembered; least recently used dropped
log = logging.getLogger("murakkab_lg.runtime")


class Runtime:
    """Profile-guided planning plus deployment lifecycle plus routing, in one process.

    Failures and bounds: `retry` (how hard one call tries, failover.py), `breaker` (when a
    replica is skipped, breaker.py), `admission` (calls per deployment at once and waiting,
    admission.py) and `caps` (the most `max_tokens` and `n` a call may ask for).
    """

    def __init__(
        self,
        deployments: Sequence[Deployment],
        profiles: ProfileStore,
        *,
        policy: str | Policy = "greedy",
        objective: Objective = Objective.ENERGY,
        default: str | None = None,
        engine_factory: EngineFactory | None = None,
        start_timeout_s: float = 180.0,
        inventory: Inventory | None = None,
        adaptive: AdaptiveConfig | bool | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        admission: AdmissionLimits | None = None,
        caps: RequestCaps | None = None,
    ) -> None:
        """`adaptive`: None/False routes every call to its planned deployment (a fixed plan);
        True or an `AdaptiveConfig` spills calls to alternatives under load and re-plans on
        sustained drift (docs/adaptive.md)."""
        self.deployments = {d.name: d for d in deployments}
        if not self.deployments:
            raise ConfigError("a Runtime needs at least one deployment")
        if default is not None and default not in self.deployments:
            raise ConfigError(f"default deployment {default!r} is not one of {', '.join(self.deployments)}")
        self.profiles = profiles
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        self.objective = objective
        self.default = default
        self.inventory = inventory  # None: GPUs as NVML reports them on this machine
        self.telemetry = Telemetry()
        self.plans: dict[str, Plan] = {}
        self.retry = retry or RetryPolicy()
        self.admission_limits = admission or AdmissionLimits()
        self.caps = caps or RequestCaps()
        self._pool = ReplicaPool(engine_factory or create_engine, start_timeout_s, breaker=breaker)
        self._gates: dict[str, Admission] = {}
        self._fallbacks: IntentMemo[tuple[Deployment, ...]] = IntentMemo(_INTENT_ROUTES)
        self._routes: dict[tuple[str, str], str] = {}
        self._intent_routes: IntentMemo[NodeRoute] = IntentMemo(_INTENT_ROUTES)
        self._lock = threading.Lock()
        self.adaptive = AdaptiveConfig() if adaptive is True else (adaptive or None)
        cfg = self.adaptive or AdaptiveConfig()
        self.live = LiveState(window_s=cfg.window_s, fresh_s=cfg.fresh_s)
        self.live.follow(self.telemetry)  # reads the records when asked, not on every call
        self.workflows: dict[str, Workflow] = {}  # the workflow each plan was made for
        self.replans: deque[ReplanEvent] = deque(maxlen=256)
        self._node_routes: dict[tuple[str, str], NodeRoute] = {}
        self._stages: dict[tuple[str, str], tuple[str, ...]] = {}  # cascade: first stage, then escalations
        self._controller: control_loop.Controller | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def embedded(cls, models: list[str] | None = None, **kwargs: Any) -> Runtime:
        """The embedded CPU ladder: `models` (names or tiers), or every model already pulled."""
        from murakkab_lg.catalog.embedded import embedded_deployments, pulled_models, shipped_profiles

        chosen = models if models is not None else pulled_models()
        if not chosen:
            raise ConfigError("no embedded model is downloaded. To fix: run `murakkab models pull`.")
        return cls(embedded_deployments(chosen), shipped_profiles(), **kwargs)

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> Runtime:
        """The Runtime a YAML/JSON config file describes (schema: murakkab_lg/runtime/config.py)."""
        from murakkab_lg.runtime.config import runtime_from_config

        return runtime_from_config(path, **overrides)

    # -- planning -----------------------------------------------------------------------------
    def candidates(self) -> tuple[Candidate, ...]:
        out = []
        for d in self.deployments.values():
            prof = self.profiles.get(d.name)
            if prof is not None:
                out.append(Candidate(deployment=d, profile=prof))
        if not out:
            raise ConfigError(
                f"planning by intent needs profiles, and no deployment has one ({', '.join(self.deployments)}). "
                "To fix: measure them with `murakkab profile --config <your config>` (the embedded models: "
                "`murakkab profile`) and list the file under `profiles`, or name a deployment in the request "
                "(model='<deployment>')."
            )
        return tuple(out)

    def plan(self, workflow: Workflow, policy: str | Policy | None = None, *,
             slowdown: Mapping[str, float] | None = None) -> Plan:
        """A plan for `workflow`; nothing starts. `slowdown`: deployment -> factor its observed
        latency exceeds its profile by (re-planning passes it, so a slow engine is planned as slow)."""
        pol = self.policy if policy is None else (get_policy(policy) if isinstance(policy, str) else policy)
        candidates = self.candidates()
        if slowdown:
            candidates = tuple(c.model_copy(update={"profile": _slowed(c.profile, slowdown[c.name])})
                               if c.name in slowdown else c for c in candidates)
        problem = PlanningProblem(workflow=workflow, candidates=candidates,
                                  objective=workflow.objective or self.objective,
                                  profile_source="; ".join(self.profiles.sources),
                                  inventory=self.inventory)  # None: capacity unconstrained
        plan = pol.plan(problem)
        self.workflows[plan.workflow] = workflow
        return plan

    def _place(self, deployments: Sequence[Deployment]) -> tuple[Deployment, ...]:
        """GPU vLLM deployments without GPUs get them from the packer (memory from their profiles).

        Deployments that already name their GPUs, and CPU or API ones, pass through unchanged.
        """
        todo = [d for d in deployments if isinstance(d.engine, VllmSettings)
                and d.placement.device.lower() != "cpu" and not d.placement.gpus]
        if not todo:
            return tuple(deployments)
        from murakkab_lg.runtime.placement import memory_needs_from_profiles, place, place_on_this_machine

        need = memory_needs_from_profiles(todo, self.profiles)
        placed = place(todo, self.inventory, need) if self.inventory else place_on_this_machine(todo, need)
        by_name = {d.name: d for d in placed.deployments}
        return tuple(by_name.get(d.name, d) for d in deployments)

    def apply(self, plan: Plan, *, start: bool = True) -> None:
        """Route the plan's nodes to its deployments, place GPU ones, and (by default) start them now."""
        deployments = self._place(plan.deployments)
        for d in deployments:
            if not self._pool.is_running(d.name):
                self.deployments[d.name] = d
        for d in deployments:
            slots = control.slots_of(d)
            if slots is not None:
                self.live.slots[d.name] = max(1, slots // d.replicas)
        workflow = self.workflows.get(plan.workflow)
        slots = {n: control.slots_of(d) for n, d in self.deployments.items()}
        headroom = self.adaptive.headroom if self.adaptive is not None else 1.0
        planned = workflow is not None and {c.node for c in plan.choices} <= {n.name for n in workflow.nodes}
        routes = control.node_routes(plan, workflow, slots, headroom) if planned else {}
        with self._lock:
            for c in plan.choices:
                key = (plan.workflow, c.node)
                self._routes[key] = c.deployment
                if c.node in routes:
                    self._node_routes[key] = routes[c.node]
                if c.escalation:
                    self._stages[key] = (c.deployment, *c.escalation)
                else:
                    self._stages.pop(key, None)
            self.plans[plan.workflow] = plan
            self._fallbacks.clear()  # deployments may have been placed anew
        if start:
            for d in deployments:
                self._pool.ensure(self.deployments[d.name])
            if self.adaptive is not None and self.adaptive.spill:
                for name in self._warm_alternatives(plan):
                    self._pool.ensure(self.deployments[name])
            self._start_controller()

    def _warm_alternatives(self, plan: Plan) -> list[str]:
        """The first `warm_alternatives` alternatives of each node: spill needs running engines."""
        k = self.adaptive.warm_alternatives if self.adaptive else 0
        names = [a.deployment for c in plan.choices for a in c.alternatives[:k]]
        return [n for n in dict.fromkeys(names) if n in self.deployments]

    def resolve(self, route: Route | None, body: Body | None = None) -> Deployment:
        """Route -> deployment: explicit deployment > planned node > intent > default; a `body`
        that carries tools only goes where tool-use meets the node's floor (runtime/tool_routing.py)."""
        dep = self._resolve(route)
        # `body.get("tools")` first: a call without tools (most) never enters tool_routing.
        if body is not None and body.get("tools") and (route is None or route.deployment is None) \
                and carries_tools(body):
            rows = [p for n in self.deployments if (p := self.profiles.get(n)) is not None]
            dep = self.deployments[route_tool_call(dep.name, route.intent if route else None, rows,
                                                   objective=self.objective, node=route.node if route else None)]
        if isinstance(dep.engine, VllmSettings) and not dep.placement.gpus and not self._pool.is_running(dep.name):
            dep = self._place([dep])[0]  # reached without apply(): place it alone
            self.deployments[dep.name] = dep
        return dep

    def _resolve(self, route: Route | None) -> Deployment:
        if route is not None:
            if route.deployment is not None:
                try:
                    return self.deployments[route.deployment]
                except KeyError:
                    raise RoutingError(
                        f"unknown deployment {route.deployment!r}; valid: {', '.join(self.deployments)}"
                    ) from None
            if route.node is not None:
                key = (route.workflow or "", route.node)
                name = self._routes.get(key)
                if name is not None:
                    stages = self._stages.get(key)
                    if stages is not None and not self._checks(route):
                        # A cascade without a check cannot tell when to escalate: serve its last
                        # stage, the one whose quality the plan promised.
                        return self.deployments[stages[-1]]
                    nr = self._node_routes.get(key) if self.adaptive is not None and self.adaptive.spill else None
                    if nr is not None:
                        name = control.choose(nr, self.live.service_s, self._pool_inflight, self._pool.is_running)
                    return self.deployments[name]
            if route.intent is not None:
                nr = self._route_intent(route.intent)
                if self.adaptive is not None and self.adaptive.spill:  # spills only to running alternatives
                    return self.deployments[control.choose(nr, self.live.service_s, self._pool_inflight,
                                                           self._pool.is_running)]
                return self.deployments[nr.primary.deployment]
        if self.default is not None:
            return self.deployments[self.default]
        raise RoutingError(
            "the call has no annotated node, intent or deployment and the runtime has no default. "
            "To fix: annotate the node, pass model='murakkab/<intent>', or set Runtime(default=...)."
        )

    def _route_intent(self, intent: Intent) -> NodeRoute:
        """An unplanned call's route, planned once per distinct intent (LRU-bounded memo)."""
        nr = self._intent_routes.get(intent)
        if nr is None:
            wf = Workflow(name=f"intent:{intent.intent}", nodes=(WorkflowNode(name=intent.intent, intent=intent),),
                          objective=self.objective)
            slots = {n: control.slots_of(d) for n, d in self.deployments.items()}
            headroom = self.adaptive.headroom if self.adaptive is not None else 1.0
            nr = control.node_routes(self.plan(wf), wf, slots, headroom)[intent.intent]
            self._intent_routes.put(intent, None, nr)
        return nr

    def _pool_inflight(self, name: str) -> int:
        return sum(r.inflight for r in self._pool.replicas(name))

    @staticmethod
    def _checks(route: Route | None) -> bool:
        it = route.intent if route is not None else None
        return it is not None and (it.check is not None or it.min_confidence is not None)

    def _cascade(self, route: Route | None) -> tuple[str, ...] | None:
        """The stages of a cascaded node call that has a check, else None (an ordinary call)."""
        if route is None or route.deployment is not None or route.node is None or not self._stages:
            return None
        stages = self._stages.get((route.workflow or "", route.node))
        return stages if stages is not None and self._checks(route) else None

    # -- serving ------------------------------------------------------------------------------
    def _prepare(self, body: Body, dep: Deployment) -> Body:
        self.caps.check(body)
        out = {k: v for k, v in body.items() if k not in _STRIP}
        out["model"] = dep.name
        return out

    def admission(self, name: str) -> Admission:
        """The admission gate of deployment `name` (created on first use)."""
        gate = self._gates.get(name)
        if gate is None:
            with self._lock:
                gate = self._gates.setdefault(name, Admission(name, self.admission_limits,
                                                              self.deployments[name].replicas))
        return gate

    def fallbacks(self, route: Route | None, dep: Deployment) -> tuple[Deployment, ...]:
        """`dep`, then every other deployment that meets the call's floor, best first.

        A planned node's fallbacks are its plan's ranked `alternatives`; an unplanned call with an
        intent gets the deployments whose measured quality meets its `min_quality`. A call that
        names its deployment (cascade stages do), or has no intent (the default route), has no
        floor to judge a substitute by, so it gets no fallback.
        """
        if route is None or route.deployment is not None:
            return (dep,)
        if route.node is not None:
            plan = self.plans.get(route.workflow or "")
            choice = next((c for c in plan.choices if c.node == route.node), None) if plan else None
            if choice is not None:
                names = [choice.deployment, *(a.deployment for a in choice.alternatives)]
                return (dep, *(self.deployments[n] for n in dict.fromkeys(names) if n != dep.name
                               and n in self.deployments))
        intent = route.intent
        if intent is None:
            return (dep,)
        got = self._fallbacks.get(intent, dep.name)
        if got is None:
            names = [d.name for d in meets_floor(intent, self.candidates(), self.objective)]
            got = (dep, *(self.deployments[n] for n in names if n != dep.name))
            self._fallbacks.put(intent, dep.name, got)
        return got

    def _failover(self, route: Route | None, dep: Deployment, body: Body) -> Failover:
        deps = self.fallbacks(route, dep)
        if len(deps) > 1 and body.get("tools") and carries_tools(body):
            deps = self._tool_capable(deps, route)
        return Failover(deps, self._pool, self.admission, self.retry,
                        what=lambda: _describe(route, dep))

    def _tool_capable(self, deps: tuple[Deployment, ...], route: Route | None) -> tuple[Deployment, ...]:
        """A call with tools falls back only where `tool-use` also meets its floor (tool_routing.py)."""
        floor = route.intent.constraints.min_quality if route is not None and route.intent is not None else None
        if floor is None:
            return deps

        def ok(d: Deployment) -> bool:
            q = p.quality.get(TOOL_USE) if (p := self.profiles.get(d.name)) is not None else None
            return q is not None and q.score >= floor

        return (deps[0], *(d for d in deps[1:] if ok(d)))

    def complete(self, body: Body, route: Route | None = None, *, served: Served | None = None) -> Body:
        """One non-streaming chat completion; transient failures are retried and fall back (failover.py).
        `served`, if given, is told which deployment answered (a fallback, a cascade's stage)."""
        stages = self._cascade(route)
        if stages is not None:
            assert route is not None
            return _cascade.complete(partial(self.complete, served=served), body, route, stages)
        dep = self.resolve(route, body)
        req = self._prepare(body, dep)
        tries = self._failover(route, dep, body)
        while True:
            call = _Attempt(self.telemetry, route, tries.begin(), served)
            try:
                resp = call.replica.engine.complete(call.request(req))
            except BaseException as e:
                call.finish(error=e)
                tries.failed(call.try_, e)
                tries.recover(call.try_)
                continue
            call.finish(response=resp)
            tries.succeeded(call.try_)
            return resp

    async def acomplete(self, body: Body, route: Route | None = None, *, served: Served | None = None) -> Body:
        stages = self._cascade(route)
        if stages is not None:
            assert route is not None
            return await _cascade.acomplete(partial(self.acomplete, served=served), body, route, stages)
        dep = self.resolve(route, body)
        req = self._prepare(body, dep)
        tries = self._failover(route, dep, body)
        while True:
            call = _Attempt(self.telemetry, route, await tries.abegin(), served)
            try:
                resp = await call.replica.engine.acomplete(call.request(req))
            except BaseException as e:
                call.finish(error=e)
                tries.failed(call.try_, e)
                await tries.arecover(call.try_)
                continue
            call.finish(response=resp)
            tries.succeeded(call.try_)
            return resp

    def stream(self, body: Body, route: Route | None = None, *, served: Served | None = None) -> Iterator[Body]:
        """Streamed chunks; a failed engine is retried only before the first chunk (nothing repeated)."""
        stages = self._cascade(route)
        if stages is not None:
            assert route is not None
            yield from _cascade.stream(partial(self.stream, served=served), body, route, stages)
            return
        dep = self.resolve(route, body)
        req = self._prepare(body, dep)
        req.setdefault("stream_options", {"include_usage": True})
        tries = self._failover(route, dep, body)
        while True:
            call = _Attempt(self.telemetry, route, tries.begin(), served)
            try:
                for chunk in call.replica.engine.stream(call.request(req)):
                    call.saw(chunk)
                    yield chunk
            except BaseException as e:  # includes GeneratorExit: a consumer that stopped early
                call.finish(error=e)
                tries.failed(call.try_, e)
                tries.recover(call.try_)
                continue
            call.finish()
            tries.succeeded(call.try_)
            return

    async def astream(self, body: Body, route: Route | None = None, *,
                      served: Served | None = None) -> AsyncIterator[Body]:
        async for batch in self.astream_batches(body, route, served=served):
            for chunk in batch:
                yield chunk

    async def astream_batches(self, body: Body, route: Route | None = None, *,
                              served: Served | None = None) -> AsyncIterator[Sequence[Body]]:
        """`astream` in the groups the engine delivered together (one list per network read), for
        callers that forward the stream and write once per group (the HTTP server)."""
        stages = self._cascade(route)
        if stages is not None:
            assert route is not None
            async for chunk in _cascade.astream(partial(self.astream, served=served), body, route, stages):
                yield [chunk]
            return
        dep = self.resolve(route, body)
        req = self._prepare(body, dep)
        req.setdefault("stream_options", {"include_usage": True})
        tries = self._failover(route, dep, body)
        while True:
            call = _Attempt(self.telemetry, route, await tries.abegin(), served)
            try:
                async for batch in call.replica.engine.astream_batches(call.request(req)):
                    call.saw_batch(batch)
                    yield batch
            except BaseException as e:
                call.finish(error=e)
                tries.failed(call.try_, e)
                await tries.arecover(call.try_)
                continue
            call.finish()
            tries.succeeded(call.try_)
            return

    # -- lifecycle ----------------------------------------------------------------------------
    def running(self) -> list[str]:
        return self._pool.running()

    def start(self, name: str) -> None:
        self._pool.ensure(self.deployments[name])

    def stop(self, name: str) -> None:
        self._pool.stop(name)

    def close(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._pool.stop_all()

    # -- live state and adaptation --------------------------------------------------------------
    def status(self) -> RuntimeStatus:
        """What is running and how it behaves now: per deployment and replica, node and workflow."""
        return build_status(self)

    def run_started(self, workflow: str) -> None:
        """A workflow run began (wrap() reports each): feeds the arrival rate and calls per run."""
        self.live.run_started(workflow)

    def replan(self, workflow: str, reasons: Sequence[str] = ("asked",), snapshot: Any = None) -> ReplanEvent:
        """Re-plan `workflow` with the observed values and apply it by drain-and-swap.

        The new plan's deployments are started (and health-checked) before any route changes;
        routes then switch at once; deployments that only the old plan used are drained (their
        in-flight calls finish) and stopped. Logged, and kept in `replans` and `status()`.
        """
        cfg = self.adaptive or AdaptiveConfig()
        old = self.plans[workflow]
        snap = snapshot if snapshot is not None else self.live.snapshot()
        observed = control.with_observed(self.workflows[workflow], snap, cfg)
        new = self.plan(observed, slowdown=control.slowdowns(old, self.workflows[workflow], snap, cfg))
        mark = self.telemetry.mark()
        running = set(self.running())
        self.apply(new)  # starts (health-checked) what the new plan needs, then switches routes
        sw = control.swap(old, new, running, self._in_use())
        for name in sw.stop:
            self._drain(name, cfg.drain_timeout_s)
        lost = sum(1 for r in self.telemetry.since(mark) if not r.ok and r.deployment in sw.stop)
        event = ReplanEvent(workflow=workflow, at=time.time(), reasons=tuple(reasons), moved=sw.moved,
                            started=tuple(n for n in sw.start if self._pool.is_running(n)), stopped=sw.stop,
                            lost_calls=lost)
        self.replans.append(event)
        log.info("re-planned %s: %s; moved %s; started %s; stopped %s", workflow, "; ".join(reasons),
                 {k: f"{a} -> {b}" for k, (a, b) in sw.moved.items()} or "nothing", list(event.started) or "nothing",
                 list(sw.stop) or "nothing")
        return event

    def _in_use(self) -> set[str]:
        """Deployments some route may still send calls to."""
        used = set(self._routes.values()) | {nr.primary.deployment for nr in list(self._intent_routes.values())}
        for stages in self._stages.values():
            used.update(stages)
        for plan in self.plans.values():
            used.update(self._warm_alternatives(plan))
        if self.default is not None:
            used.add(self.default)
        return used

    def _drain(self, name: str, timeout_s: float) -> None:
        """Wait for `name`'s in-flight calls to finish (no new ones are routed to it), then stop it."""
        deadline = time.monotonic() + timeout_s
        time.sleep(0.05)  # calls resolved just before the switch reach their replica
        while self._pool_inflight(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        if name not in self._in_use():
            self._pool.stop(name)

    def _start_controller(self) -> None:
        if self.adaptive is None or not self.adaptive.replan or self._controller is not None:
            return
        with self._lock:
            if self._controller is None:
                self._controller = control_loop.Controller(self, self.adaptive)
                self._controller.start()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(route: Route | None, dep: Deployment) -> str:
    """Who the call was for, in the words of the error that ends its tries."""
    if route is None or (route.intent is None and route.node is None):
        return f"call to {dep.name!r}"
    who = f"node {route.node!r}" if route.node else "call"
    if route.intent is None:
        return who
    floor = route.intent.constraints.min_quality
    return f"{who} ({route.intent.intent}" + (f", min_quality {floor:.2f})" if floor is not None else ")")


class Served:
    """Which deployment answered a call, for a caller that reports it (the server's
    `X-Murakkab-Deployment`): the plan's choice is not always it (a fallback, a cascade's stage).
    Set as each try begins, so once an answer (or its first chunk) arrives it names that try's."""

    __slots__ = ("deployment",)

    def __init__(self) -> None:
        self.deployment: str | None = None


class _Attempt:
    """One try of one call on one replica: its in-flight slot, its CPU share, its telemetry row.

    Shared by the four serving paths (sync/async x complete/stream) so that accounting is
    written once and every try, failed ones included, leaves exactly one record.
    """

    __slots__ = ("concurrency", "replica", "route", "stage", "t0", "telemetry", "token", "try_", "ttft", "usage",
                 "wall0")

    def __init__(self, telemetry: Telemetry, route: Route | None, try_: Attempt, served: Served | None) -> None:
        self.telemetry, self.route, self.try_ = telemetry, route, try_
        if served is not None:  # the try that answers is the last to begin: a failed one is followed by another
            served.deployment = try_.deployment.name
        self.replica = replica = try_.replica
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.token = replica.meter.begin()
        replica.inflight += 1
        self.concurrency = replica.inflight
        self.ttft: float | None = None
        self.usage: Body | None = None
        self.stage = _cascade.STAGE.get()

    def request(self, req: Body) -> Body:
        """The body for this try's deployment (a fallback has another model name)."""
        name = self.try_.deployment.name
        return req if req.get("model") == name else {**req, "model": name}

    def saw(self, chunk: Body) -> None:
        if self.ttft is None and chunk.get("choices"):
            self.ttft = time.perf_counter() - self.t0
        self.usage = chunk.get("usage") or self.usage
        self.try_.sent = True
        if self.stage is not None:
            for c in chunk.get("choices") or ():
                text = (c.get("delta") or {}).get("content")
                if text:
                    self.stage.text.append(text)

    def saw_batch(self, batch: Sequence[Body]) -> None:
        """`saw` for a group of chunks; an engine's lazy `SseBatch` is asked only for what the record
        needs (first token, usage), so a forwarded stream is not parsed for telemetry."""
        if self.stage is not None or not isinstance(batch, SseBatch):
            for chunk in batch:
                self.saw(chunk)
            return
        self.try_.sent = True
        if self.ttft is None and batch.has_choices():
            self.ttft = time.perf_counter() - self.t0
        self.usage = batch.usage() or self.usage

    def finish(self, *, response: Body | None = None, error: BaseException | None = None) -> None:
        rep = self.replica
        rep.inflight -= 1
        energy = rep.meter.end(self.token)
        if response is not None:
            self.usage = response.get("usage")
            timings = response.get("timings") or {}  # llama-server reports its prompt time
            self.ttft = timings["prompt_ms"] / 1000 if "prompt_ms" in timings else None
        usage = self.usage
        prompt = int(usage.get("prompt_tokens") or 0) if usage else 0
        completion = int(usage.get("completion_tokens") or 0) if usage else 0
        route, stage, try_ = self.route, self.stage, self.try_
        verdict = None if stage is None or error is not None else stage.judge(response)
        # Positional, in CallRecord's field order (a test holds the order): binding ~20 keywords
        # was the largest single cost of recording a call.
        self.telemetry.record(CallRecord._make((
            route.workflow if route else None, route.node if route else None,
            route.intent.intent if route and route.intent else None,
            rep.deployment.name, rep.deployment.model, self.wall0, time.perf_counter() - self.t0, self.ttft,
            prompt, completion, energy, rep.meter.label if energy is not None else None,
            error is None, None if error is None else (str(error) or type(error).__name__),
            try_.index, try_.fallback_from, stage.index if stage else 0,
            None if verdict is None else ("pass" if verdict else "fail"),
            verdict is False and not stage.last if stage else False,
            self.concurrency, rep.engine.cost_usd(prompt, completion),
        )))


def _slowed(profile: Any, factor: float) -> Any:
    """A profile whose load points are `factor` times slower (time per token up, prefill rate down)."""
    load = tuple(p.model_copy(update={"tpot_s": p.tpot_s * factor,
                                      "prefill_tok_s": p.prefill_tok_s / factor if p.prefill_tok_s else None,
                                      "ttft_s": p.ttft_s * factor if p.ttft_s else None})
                 for p in profile.load)
    return profile.model_copy(update={"load": load})
