"""`create_app(runtime, config)`: the one place the FastAPI app is assembled.

Authentication and the early body-size check are a raw ASGI wrapper (`Guard`), not a
`BaseHTTPMiddleware`, and the app runs it before FastAPI's own middleware stack (`_GuardedApp`),
because on the hot path every layer is paid per request and per streamed write.
Every error, including FastAPI's own 404/405 and anything unexpected, leaves as an OpenAI error
envelope; an unexpected exception is logged with its traceback and answered with a reference id.
"""

from __future__ import annotations

import gc
import hmac
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from murakkab_lg.backends.engines.base import aclose_connections
from murakkab_lg.runtime import Runtime
from murakkab_lg.server.config import ServeConfig
from murakkab_lg.server.errors import ApiError, api_error_from, error_response
from murakkab_lg.server.metrics import ServerMetrics
from murakkab_lg.server.protocol import CHAT_REQUEST
from murakkab_lg.server.routes import CHAT_PATH, ChatHandler, build_router
from murakkab_lg.server.serving import DEFAULT_MODELS, ChatService

__all__ = ("Guard", "create_app")


class Guard:
    """Bearer-key check (constant time), a 413 for a declared oversized body, and the direct
    dispatch of `POST /v1/chat/completions` to its handler (see routes.py).

    With keys configured, `/v1/*` always needs one; `/metrics` and the docs (`/docs`, `/redoc`,
    `/openapi.json`) need one when the config says so (`auth_metrics`, `auth_docs`; both off by
    default so probes and scrapers on a private network need no key). `/health` is always open.
    """

    def __init__(self, app: ASGIApp, *, api_keys: Sequence[str], body_limit: int,
                 chat: ChatHandler | None = None, protect: Sequence[str] = ()) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in api_keys)
        self.limit = body_limit
        self.chat = chat
        self.exact = frozenset(p for p in protect if not p.endswith("/"))
        self.prefixes = ("/v1/", *(p for p in protect if p.endswith("/")))

    def _protected(self, path: str) -> bool:
        return path.startswith(self.prefixes) or path in self.exact

    def _authorised(self, value: bytes | None) -> bool:
        if value is None or value[:7].lower() != b"bearer ":
            return False
        token = value[7:].strip()
        ok = False
        for key in self.keys:  # no early exit: the time taken does not depend on which key matched
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = value
        if self.keys and self._protected(scope["path"]) and not self._authorised(auth):
            err = ApiError(401, "missing or invalid API key. To fix: send `Authorization: Bearer <key>` with a "
                           "key the server was started with (--api-key or $MURAKKAB_API_KEYS).",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            await error_response(err)(scope, receive, send)
            return
        if length is not None and length.isdigit() and int(length) > self.limit:
            err = ApiError(413, f"request body of {int(length)} bytes is over the {self.limit}-byte limit. To fix: "
                           "send less, or raise `body_limit_bytes` in the server config.", code="request_too_large")
            await error_response(err)(scope, receive, send)
            return
        if self.chat is not None and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await self.chat(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _GuardedApp(FastAPI):
    """FastAPI with the Guard in front of everything, its own middleware stack included: the chat
    route's errors are answered by the handler itself, everything else reaches FastAPI as usual."""

    guard: Guard | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.guard is not None and scope["type"] == "http":
            await self.guard(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _unguarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def _openapi(app: FastAPI, service: ChatService) -> dict[str, Any]:
    """FastAPI's document plus our request model (the chat route reads its body itself), with
    `model` narrowed to the names this server serves (any other is a 404), so generated clients
    and fuzzers see the same contract the server enforces."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema = CHAT_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
        names = list(dict.fromkeys([*service.model_names(), *DEFAULT_MODELS]))
        schema["properties"]["model"] = {**schema["properties"]["model"], "enum": names,
                                         "description": "murakkab/<intent>, a deployment name, or murakkab "
                                         "(the default deployment, when one is configured)"}
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        components["ChatCompletionRequest"] = schema
        for param in doc["paths"].get("/v1/models/{model}", {}).get("get", {}).get("parameters", []):
            if param.get("name") == "model":
                param["schema"] = {**param.get("schema", {}), "enum": names}
        app.openapi_schema = doc
    return app.openapi_schema


def create_app(runtime: Runtime, config: ServeConfig | None = None, *,
               api_keys: Sequence[str] | None = None, close_runtime: bool = False,
               freeze_heap: bool = False) -> FastAPI:
    """The OpenAI-compatible app over `runtime`.

    `api_keys=None` takes the keys from the config (file and environment variable); an empty
    sequence turns authentication off. `close_runtime=True` stops the engines on shutdown (the
    CLI owns its Runtime; a caller that passes its own usually does not want that).
    `freeze_heap=True` (for a process that is only this server, as `murakkab serve` is) moves
    everything alive after start-up out of the garbage collector's view (`gc.freeze`): a full
    collection otherwise walks the ~150k objects the imports and the app leave behind, a pause
    measured at 65-110 ms every few seconds under load, which set the server's p99 latency.
    """
    config = config or ServeConfig()
    keys = config.resolved_api_keys() if api_keys is None else tuple(api_keys)
    metrics = ServerMetrics()
    if runtime.telemetry.max_records is None:  # a server runs for weeks: keep memory bounded
        runtime.telemetry.max_records = config.telemetry_records
    runtime.telemetry.listeners.append(metrics.observe)
    metrics.live_status = runtime.status
    service = ChatService(runtime, config, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        for name in config.warm:
            await anyio.to_thread.run_sync(runtime.start, name)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if metrics.observe in runtime.telemetry.listeners:
                runtime.telemetry.listeners.remove(metrics.observe)
            await aclose_connections()  # engine connections belong to this loop, which ends now
            if close_runtime:
                await anyio.to_thread.run_sync(runtime.close)

    app = _GuardedApp(title="murakkab-lg", version=_version(), lifespan=lifespan,
                  description="An OpenAI-compatible endpoint over the murakkab-lg Runtime: "
                  "`model=\"murakkab/<intent>\"` is planned onto a deployment; see docs/server.md.",
                  **_no_native_telemetry())
    app.state.service = service
    app.state.metrics = metrics
    router, chat = build_router(service)
    app.include_router(router)
    protect = [*(["/metrics"] if config.auth_metrics else []),
               *(["/docs", "/docs/", "/redoc", "/openapi.json"] if config.auth_docs else [])]
    app.guard = Guard(app._unguarded, api_keys=keys, body_limit=config.body_limit_bytes, chat=chat, protect=protect)
    app.openapi = lambda: _openapi(app, service)  # type: ignore[method-assign]

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(ApiError(exc.status_code, str(exc.detail), code=code, headers=exc.headers))

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(ApiError(400, f"invalid request: {exc.errors()}"))

    async def on_error(_: Request, exc: Exception) -> Response:
        return error_response(api_error_from(exc, valid_models=service.model_names()))

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ApiError, on_error)
    app.add_exception_handler(Exception, on_error)
    return app


def _no_native_telemetry() -> dict[str, Any]:
    """FastAPI >= 0.16x checks for OpenTelemetry providers on every request (~40 us, measured);
    this server exports its own /metrics, so that check is switched off where FastAPI has it."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("murakkab-lg")
    except PackageNotFoundError:
        return "0"
