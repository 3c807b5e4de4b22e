"""Where intercepted calls go: an in-process Runtime, or a `murakkab serve` endpoint over HTTP.

Both targets take the same OpenAI body plus Route and record one `CallRecord` per call in a
`Telemetry`, so wrap()'s per-run report reads the same way in both modes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from murakkab_lg.backends.openai_http import CallStats, OpenAIClient
from murakkab_lg.errors import ConfigError, EngineUnavailableError
from murakkab_lg.runtime import Runtime
from murakkab_lg.runtime.control import ReplanEvent
from murakkab_lg.runtime.telemetry import CallRecord, Telemetry
from murakkab_lg.spec import Plan, Workflow
from murakkab_lg.wire import Route, route_headers

__all__ = ("HttpTarget", "RuntimeTarget", "Target", "as_target")

Body = dict[str, Any]
DEPLOYMENT_HEADER = "x-murakkab-deployment"


class Target(Protocol):
    telemetry: Telemetry

    def prepare(self, workflow: Workflow) -> Plan | None: ...
    def deployments(self) -> tuple[str, ...]: ...
    def run_started(self, workflow: str) -> None: ...
    def replans_since(self, workflow: str, since: float) -> tuple[ReplanEvent, ...]: ...
    def complete(self, body: Body, route: Route) -> Body: ...
    async def acomplete(self, body: Body, route: Route) -> Body: ...
    def stream(self, body: Body, route: Route) -> Iterator[Body]: ...
    def astream(self, body: Body, route: Route) -> AsyncIterator[Body]: ...


class RuntimeTarget:
    """In-process: the Route object goes straight to `Runtime.complete/stream`.

    The four call methods are the runtime's own bound methods (no wrapper frame per call), so an
    intercepted call goes from interception to the runtime directly.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.telemetry = runtime.telemetry
        self.complete = runtime.complete
        self.acomplete = runtime.acomplete
        self.stream = runtime.stream
        self.astream = runtime.astream

    def prepare(self, workflow: Workflow) -> Plan | None:
        if not workflow.nodes:
            return None
        plan = self.runtime.plan(workflow)
        self.runtime.apply(plan)
        return plan

    def deployments(self) -> tuple[str, ...]:
        return tuple(self.runtime.deployments)

    def run_started(self, workflow: str) -> None:
        self.runtime.run_started(workflow)

    def replans_since(self, workflow: str, since: float) -> tuple[ReplanEvent, ...]:
        return tuple(e for e in list(self.runtime.replans) if e.workflow == workflow and e.at >= since)


class HttpTarget:
    """Server mode: OpenAI requests carrying the route to `murakkab serve` (or any compatible server)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/v1") else url + "/v1"
        self.api = OpenAIClient(
            self.url.removesuffix("/v1"), who=self.url, api_key=api_key, timeout_s=timeout_s,
            unreachable_hint="To fix: start it with `murakkab serve` or correct the URL given to wrap().")
        self.telemetry = Telemetry()

    def prepare(self, workflow: Workflow) -> Plan | None:
        return None  # the server plans; requests carry node, intent and constraints

    def run_started(self, workflow: str) -> None:
        return None  # the server sees calls, not runs

    def replans_since(self, workflow: str, since: float) -> tuple[ReplanEvent, ...]:
        return ()  # the server's re-plans are in its status (GET /v1/murakkab/status)

    def deployments(self) -> tuple[str, ...]:
        return ()

    def _record(self, route: Route, stats: CallStats, error: BaseException | None) -> None:
        usage = stats.usage or {}
        deployment = stats.headers.get(DEPLOYMENT_HEADER) or stats.model
        if deployment is None:
            unreachable = isinstance(error, EngineUnavailableError) and error.status_code is None
            deployment = "(unreachable)" if unreachable else "(error)" if error is not None else "(unknown)"
        self.telemetry.record(CallRecord(
            workflow=route.workflow, node=route.node, intent=route.intent.intent if route.intent else None,
            deployment=deployment, model=deployment, started_at=stats.wall0, latency_s=stats.latency_s,
            ttft_s=stats.ttft_s, prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0), energy_j=None, energy_label=None,
            ok=error is None, error=None if error is None else (str(error) or type(error).__name__)))

    def complete(self, body: Body, route: Route) -> Body:
        stats = CallStats()
        try:
            out = self.api.complete(body, headers=route_headers(route), stats=stats)
        except BaseException as e:
            self._record(route, stats, e)
            raise
        self._record(route, stats, None)
        return out

    async def acomplete(self, body: Body, route: Route) -> Body:
        stats = CallStats()
        try:
            out = await self.api.acomplete(body, headers=route_headers(route), stats=stats)
        except BaseException as e:
            self._record(route, stats, e)
            raise
        self._record(route, stats, None)
        return out

    def stream(self, body: Body, route: Route) -> Iterator[Body]:
        stats, error = CallStats(), None
        req = {**body, "stream_options": {"include_usage": True}}
        try:
            yield from self.api.stream(req, headers=route_headers(route), stats=stats)
        except BaseException as e:
            error = e
            raise
        finally:
            self._record(route, stats, error)

    async def astream(self, body: Body, route: Route) -> AsyncIterator[Body]:
        stats, error = CallStats(), None
        req = {**body, "stream_options": {"include_usage": True}}
        try:
            async for chunk in self.api.astream(req, headers=route_headers(route), stats=stats):
                yield chunk
        except BaseException as e:
            error = e
            raise
        finally:
            self._record(route, stats, error)


def as_target(runtime: Runtime | str | Target) -> Target:
    """A Runtime (in-process), a server URL (server mode), or a ready Target."""
    if isinstance(runtime, Runtime):
        return RuntimeTarget(runtime)
    if isinstance(runtime, str):
        if not runtime.startswith(("http://", "https://")):
            raise ConfigError(f"runtime={runtime!r} is not a URL. To fix: pass a murakkab_lg.Runtime, or the "
                              "URL of `murakkab serve` such as 'http://127.0.0.1:8000/v1'.")
        return HttpTarget(runtime)
    if hasattr(runtime, "complete") and hasattr(runtime, "telemetry"):
        return runtime
    raise ConfigError(f"runtime must be a murakkab_lg.Runtime or a server URL, got {type(runtime).__name__}. "
                      "To fix: wrap(graph, runtime=Runtime.embedded()) or runtime='http://127.0.0.1:8000/v1'.")
