"""Where intercepted calls go: an in-process Runtime, or a `murakkab serve` endpoint over HTTP.

Both targets take the same OpenAI body plus Route and record one `CallRecord` per call in a
`Telemetry`, so wrap()'s per-run report reads the same way in both modes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import httpx

from murakkab_lg.errors import ConfigError, EngineRequestError, EngineUnavailableError
from murakkab_lg.runtime import Runtime
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
    def complete(self, body: Body, route: Route) -> Body: ...
    async def acomplete(self, body: Body, route: Route) -> Body: ...
    def stream(self, body: Body, route: Route) -> Iterator[Body]: ...
    def astream(self, body: Body, route: Route) -> AsyncIterator[Body]: ...


class RuntimeTarget:
    """In-process: the Route object goes straight to `Runtime.complete/stream`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.telemetry = runtime.telemetry

    def prepare(self, workflow: Workflow) -> Plan | None:
        if not workflow.nodes:
            return None
        plan = self.runtime.plan(workflow)
        self.runtime.apply(plan)
        return plan

    def deployments(self) -> tuple[str, ...]:
        return tuple(self.runtime.deployments)

    def complete(self, body: Body, route: Route) -> Body:
        return self.runtime.complete(body, route)

    async def acomplete(self, body: Body, route: Route) -> Body:
        return await self.runtime.acomplete(body, route)

    def stream(self, body: Body, route: Route) -> Iterator[Body]:
        return self.runtime.stream(body, route)

    def astream(self, body: Body, route: Route) -> AsyncIterator[Body]:
        return self.runtime.astream(body, route)


def _error(resp: httpx.Response, text: str, url: str) -> Exception:
    try:
        msg = json.loads(text).get("error", {}).get("message") or text
    except (ValueError, AttributeError):
        msg = text
    if 400 <= resp.status_code < 500:
        return EngineRequestError(f"{url} rejected the request ({resp.status_code}): {msg}",
                                  status_code=resp.status_code, body=text)
    return EngineUnavailableError(f"{url} failed ({resp.status_code}): {msg}")


class HttpTarget:
    """Server mode: OpenAI requests carrying the route to `murakkab serve` (or any compatible server)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/v1") else url + "/v1"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)
        self.telemetry = Telemetry()
        self._client: httpx.Client | None = None
        self._aclients: dict[int, httpx.AsyncClient] = {}

    def prepare(self, workflow: Workflow) -> Plan | None:
        return None  # the server plans; requests carry node, intent and constraints

    def deployments(self) -> tuple[str, ...]:
        return ()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, headers=self._headers)
        return self._client

    def aclient(self) -> httpx.AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._aclients.get(id(loop))
        if client is None:
            client = self._aclients[id(loop)] = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        return client

    def _unavailable(self, e: Exception) -> EngineUnavailableError:
        return EngineUnavailableError(f"murakkab server at {self.url} is unreachable ({type(e).__name__}: {e}). "
                                      "To fix: start it with `murakkab serve` or correct the URL given to wrap().")

    def _record(self, route: Route, deployment: str, t0: float, wall0: float, ttft: float | None,
                usage: Body | None, error: str | None) -> None:
        usage = usage or {}
        self.telemetry.record(CallRecord(
            workflow=route.workflow, node=route.node, intent=route.intent.intent if route.intent else None,
            deployment=deployment, model=deployment, started_at=wall0, latency_s=time.perf_counter() - t0,
            ttft_s=ttft, prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0), energy_j=None, energy_label=None,
            ok=error is None, error=error))

    def complete(self, body: Body, route: Route) -> Body:
        t0, wall0 = time.perf_counter(), time.time()
        try:
            resp = self.client.post(self.url + "/chat/completions", json={**body, "stream": False},
                                    headers=route_headers(route))
        except httpx.TransportError as e:
            self._record(route, "(unreachable)", t0, wall0, None, None, str(e))
            raise self._unavailable(e) from e
        if resp.status_code != 200:
            err = _error(resp, resp.text, self.url)
            self._record(route, "(error)", t0, wall0, None, None, str(err))
            raise err
        data = resp.json()
        self._record(route, resp.headers.get(DEPLOYMENT_HEADER) or str(data.get("model")), t0, wall0, None,
                     data.get("usage"), None)
        return data

    async def acomplete(self, body: Body, route: Route) -> Body:
        t0, wall0 = time.perf_counter(), time.time()
        try:
            resp = await self.aclient().post(self.url + "/chat/completions", json={**body, "stream": False},
                                             headers=route_headers(route))
        except httpx.TransportError as e:
            self._record(route, "(unreachable)", t0, wall0, None, None, str(e))
            raise self._unavailable(e) from e
        if resp.status_code != 200:
            err = _error(resp, resp.text, self.url)
            self._record(route, "(error)", t0, wall0, None, None, str(err))
            raise err
        data = resp.json()
        self._record(route, resp.headers.get(DEPLOYMENT_HEADER) or str(data.get("model")), t0, wall0, None,
                     data.get("usage"), None)
        return data

    def stream(self, body: Body, route: Route) -> Iterator[Body]:
        t0, wall0 = time.perf_counter(), time.time()
        deployment, ttft, usage, error = "(unknown)", None, None, None
        req = {**body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            with self.client.stream("POST", self.url + "/chat/completions", json=req,
                                    headers=route_headers(route)) as resp:
                if resp.status_code != 200:
                    raise _error(resp, resp.read().decode(errors="replace"), self.url)
                deployment = resp.headers.get(DEPLOYMENT_HEADER) or deployment
                for data in _events(resp.iter_lines()):
                    if ttft is None and data.get("choices"):
                        ttft = time.perf_counter() - t0
                    if deployment == "(unknown)" and data.get("model"):
                        deployment = str(data["model"])
                    usage = data.get("usage") or usage
                    yield data
        except httpx.TransportError as e:
            error = str(e)
            raise self._unavailable(e) from e
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self._record(route, deployment, t0, wall0, ttft, usage, error)

    async def astream(self, body: Body, route: Route) -> AsyncIterator[Body]:
        t0, wall0 = time.perf_counter(), time.time()
        deployment, ttft, usage, error = "(unknown)", None, None, None
        req = {**body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            async with self.aclient().stream("POST", self.url + "/chat/completions", json=req,
                                             headers=route_headers(route)) as resp:
                if resp.status_code != 200:
                    raise _error(resp, (await resp.aread()).decode(errors="replace"), self.url)
                deployment = resp.headers.get(DEPLOYMENT_HEADER) or deployment
                async for line in resp.aiter_lines():
                    data = _event(line)
                    if data is None:
                        continue
                    if data is _DONE:
                        break
                    if ttft is None and data.get("choices"):
                        ttft = time.perf_counter() - t0
                    if deployment == "(unknown)" and data.get("model"):
                        deployment = str(data["model"])
                    usage = data.get("usage") or usage
                    yield data
        except httpx.TransportError as e:
            error = str(e)
            raise self._unavailable(e) from e
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self._record(route, deployment, t0, wall0, ttft, usage, error)


_DONE: Body = {}


def _event(line: str) -> Body | None:
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    return json.loads(data) if data else None


def _events(lines: Iterator[str]) -> Iterator[Body]:
    for line in lines:
        data = _event(line)
        if data is _DONE:
            return
        if data is not None:
            yield data


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
