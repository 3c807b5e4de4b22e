"""The Runtime: plans workflows, keeps the planned deployments running, and serves calls.

Everything above it (the LangGraph adapter, MurakkabChat, the HTTP server, the CLI) sends
OpenAI-format chat bodies plus a `Route` here; everything below it (policies, engines, profiles)
never sees LangGraph or HTTP clients of ours.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import ConfigError, EngineUnavailableError, RoutingError
from murakkab_lg.policies import Candidate, PlanningProblem, Policy, get_policy
from murakkab_lg.runtime.replicas import EngineFactory, Replica, ReplicaPool
from murakkab_lg.runtime.telemetry import CallRecord, Telemetry
from murakkab_lg.spec import Deployment, Intent, Inventory, Objective, Plan, VllmSettings, Workflow, WorkflowNode
from murakkab_lg.wire import Route

__all__ = ("Route", "Runtime")

Body = dict[str, Any]
_STRIP = ("murakkab",)


class Runtime:
    """Profile-guided planning plus deployment lifecycle plus routing, in one process."""

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
    ) -> None:
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
        self._pool = ReplicaPool(engine_factory, start_timeout_s) if engine_factory else ReplicaPool(
            start_timeout_s=start_timeout_s)
        self._routes: dict[tuple[str, str], str] = {}
        self._intent_routes: dict[Intent, str] = {}
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def embedded(cls, models: list[str] | None = None, **kwargs: Any) -> Runtime:
        """The embedded CPU ladder: `models` (names or tiers), or every model already pulled."""
        from murakkab_lg.catalog.embedded import embedded_deployments, pulled_models, shipped_profiles

        chosen = models if models is not None else pulled_models()
        if not chosen:
            raise ConfigError("no embedded model is downloaded. To fix: run `murakkab models pull`.")
        return cls(embedded_deployments(chosen), shipped_profiles(), **kwargs)

    # -- planning -----------------------------------------------------------------------------
    def candidates(self) -> tuple[Candidate, ...]:
        out = []
        for d in self.deployments.values():
            prof = self.profiles.get(d.name)
            if prof is not None:
                out.append(Candidate(deployment=d, profile=prof))
        if not out:
            raise ConfigError(
                f"no profile for any deployment ({', '.join(self.deployments)}). To fix: run "
                "`murakkab profile`."
            )
        return tuple(out)

    def plan(self, workflow: Workflow, policy: str | Policy | None = None) -> Plan:
        """A plan for `workflow`; pure (nothing starts)."""
        pol = self.policy if policy is None else (get_policy(policy) if isinstance(policy, str) else policy)
        problem = PlanningProblem(workflow=workflow, candidates=self.candidates(),
                                  objective=workflow.objective or self.objective,
                                  profile_source="; ".join(self.profiles.sources),
                                  inventory=self.inventory)  # None: capacity unconstrained
        return pol.plan(problem)

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
        with self._lock:
            for c in plan.choices:
                self._routes[(plan.workflow, c.node)] = c.deployment
            self.plans[plan.workflow] = plan
        if start:
            for d in deployments:
                self._pool.ensure(self.deployments[d.name])

    def resolve(self, route: Route | None) -> Deployment:
        """Route -> deployment: explicit deployment > planned node > intent > default."""
        dep = self._resolve(route)
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
                name = self._routes.get((route.workflow or "", route.node))
                if name is not None:
                    return self.deployments[name]
            if route.intent is not None:
                return self.deployments[self._route_intent(route.intent)]
        if self.default is not None:
            return self.deployments[self.default]
        raise RoutingError(
            "the call has no annotated node, intent or deployment and the runtime has no default. "
            "To fix: annotate the node, pass model='murakkab/<intent>', or set Runtime(default=...)."
        )

    def _route_intent(self, intent: Intent) -> str:
        name = self._intent_routes.get(intent)
        if name is None:
            wf = Workflow(name=f"intent:{intent.intent}", nodes=(WorkflowNode(name=intent.intent, intent=intent),),
                          objective=self.objective)
            name = self.plan(wf).choices[0].deployment
            self._intent_routes[intent] = name
        return name

    # -- serving ------------------------------------------------------------------------------
    def _prepare(self, body: Body, dep: Deployment) -> Body:
        out = {k: v for k, v in body.items() if k not in _STRIP}
        out["model"] = dep.name
        return out

    def _attempt(self, route: Route | None, dep: Deployment, attempt: int) -> _Attempt:
        return _Attempt(self.telemetry, route, self._pool.pick(dep), attempt)

    def complete(self, body: Body, route: Route | None = None) -> Body:
        """One non-streaming chat completion, retried once on a dead engine (restarted first)."""
        dep = self.resolve(route)
        req = self._prepare(body, dep)
        for attempt in (0, 1):
            call = self._attempt(route, dep, attempt)
            try:
                resp = call.replica.engine.complete(req)
            except EngineUnavailableError as e:
                call.finish(error=e)
                if attempt:
                    raise
                self._pool.restart(call.replica)
                continue
            except BaseException as e:
                call.finish(error=e)
                raise
            call.finish(response=resp)
            return resp
        raise AssertionError("unreachable")

    async def acomplete(self, body: Body, route: Route | None = None) -> Body:
        dep = self.resolve(route)
        if not self._pool.is_running(dep.name):
            await asyncio.to_thread(self._pool.ensure, dep)
        req = self._prepare(body, dep)
        for attempt in (0, 1):
            call = self._attempt(route, dep, attempt)
            try:
                resp = await call.replica.engine.acomplete(req)
            except EngineUnavailableError as e:
                call.finish(error=e)
                if attempt:
                    raise
                await asyncio.to_thread(self._pool.restart, call.replica)
                continue
            except BaseException as e:
                call.finish(error=e)
                raise
            call.finish(response=resp)
            return resp
        raise AssertionError("unreachable")

    def stream(self, body: Body, route: Route | None = None) -> Iterator[Body]:
        """Streamed chunks; a dead engine is retried only before the first chunk (nothing lost)."""
        dep = self.resolve(route)
        req = self._prepare(body, dep)
        req.setdefault("stream_options", {"include_usage": True})
        for attempt in (0, 1):
            call = self._attempt(route, dep, attempt)
            try:
                for chunk in call.replica.engine.stream(req):
                    call.saw(chunk)
                    yield chunk
            except EngineUnavailableError as e:
                call.finish(error=e)
                if attempt or call.sent:
                    raise
                self._pool.restart(call.replica)
                continue
            except BaseException as e:  # includes GeneratorExit: a consumer that stopped early
                call.finish(error=e)
                raise
            call.finish()
            return

    async def astream(self, body: Body, route: Route | None = None) -> AsyncIterator[Body]:
        dep = self.resolve(route)
        if not self._pool.is_running(dep.name):
            await asyncio.to_thread(self._pool.ensure, dep)
        req = self._prepare(body, dep)
        req.setdefault("stream_options", {"include_usage": True})
        for attempt in (0, 1):
            call = self._attempt(route, dep, attempt)
            try:
                async for chunk in call.replica.engine.astream(req):
                    call.saw(chunk)
                    yield chunk
            except EngineUnavailableError as e:
                call.finish(error=e)
                if attempt or call.sent:
                    raise
                await asyncio.to_thread(self._pool.restart, call.replica)
                continue
            except BaseException as e:
                call.finish(error=e)
                raise
            call.finish()
            return

    # -- lifecycle ----------------------------------------------------------------------------
    def running(self) -> list[str]:
        return self._pool.running()

    def start(self, name: str) -> None:
        self._pool.ensure(self.deployments[name])

    def stop(self, name: str) -> None:
        self._pool.stop(name)

    def close(self) -> None:
        self._pool.stop_all()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Attempt:
    """One try of one call on one replica: its in-flight slot, its CPU share, its telemetry row.

    Shared by the four serving paths (sync/async x complete/stream) so that accounting is
    written once and every try, failed ones included, leaves exactly one record.
    """

    __slots__ = ("attempt", "replica", "route", "sent", "t0", "telemetry", "token", "ttft", "usage", "wall0")

    def __init__(self, telemetry: Telemetry, route: Route | None, replica: Replica, attempt: int) -> None:
        self.telemetry, self.route, self.replica, self.attempt = telemetry, route, replica, attempt
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.token = replica.meter.begin()
        replica.inflight += 1
        self.ttft: float | None = None
        self.usage: Body | None = None
        self.sent = False

    def saw(self, chunk: Body) -> None:
        if self.ttft is None and chunk.get("choices"):
            self.ttft = time.perf_counter() - self.t0
        self.usage = chunk.get("usage") or self.usage
        self.sent = True

    def finish(self, *, response: Body | None = None, error: BaseException | None = None) -> None:
        rep = self.replica
        rep.inflight -= 1
        energy = rep.meter.end(self.token)
        if response is not None:
            self.usage = response.get("usage")
            timings = response.get("timings") or {}  # llama-server reports its prompt time
            self.ttft = timings["prompt_ms"] / 1000 if "prompt_ms" in timings else None
        usage = self.usage or {}
        route = self.route
        self.telemetry.record(CallRecord(
            workflow=route.workflow if route else None, node=route.node if route else None,
            intent=route.intent.intent if route and route.intent else None,
            deployment=rep.deployment.name, model=rep.deployment.model, started_at=self.wall0,
            latency_s=time.perf_counter() - self.t0, ttft_s=self.ttft,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            energy_j=energy, energy_label=getattr(rep.meter, "label", "estimated") if energy is not None else None,
            ok=error is None, error=None if error is None else (str(error) or type(error).__name__),
            retries=self.attempt,
        ))
