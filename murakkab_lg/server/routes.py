"""Thin routes: read the request, call `ChatService`, map its result to a Starlette response.

No logic lives here beyond HTTP plumbing (vLLM's api_router split), so the behaviour is tested
once in serving.py's terms and the routes only decide status codes, headers and media types.

The chat handler is a raw ASGI callable, and `build_router` also returns it: `app.Guard` calls it
directly for `POST /v1/chat/completions`, before FastAPI's router and middleware stack, and it
writes the response itself (a streamed answer goes out in one write per group of chunks the
engine delivered together, see OpenAIClient.astream_batches), because on the hot path every
layer is paid per request or per chunk. The registered route documents the same handler in the
OpenAPI schema and serves it when the router is mounted without the Guard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from openai.types import Model
from openai.types.chat import ChatCompletion
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from murakkab_lg.server.errors import ApiError, ErrorEnvelope, api_error_from, error_response
from murakkab_lg.server.metrics import CONTENT_TYPE_LATEST
from murakkab_lg.server.serving import DONE_EVENT, ChatResult, ChatService

__all__ = ("CHAT_PATH", "STATUS_PATH", "ChatHandler", "build_router")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": text}
    for code, text in {
        400: "malformed JSON or invalid fields",
        401: "missing or wrong API key (when keys are configured)",
        404: "unknown model, intent or deployment (`model_not_found`, lists the valid names)",
        413: "request body over the configured limit",
        429: "admission control refused the request; see Retry-After",
        503: "no deployment can serve the request",
    }.items()
}

_CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ChatCompletion, "description": "a chat completion, or with `stream: true` a server-sent "
          "event stream of `chat.completion.chunk` objects ending in `data: [DONE]`",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **_ERRORS,
}


_JSON_TYPE = (b"content-type", b"application/json")
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_DEPLOYMENT = b"x-murakkab-deployment"
_ROUTE_PREFIX = b"x-murakkab-"
_WATCH_AFTER_S = 0.05  # a stream watches for its client going away once it has lasted this long


async def read_body(receive: Receive, limit: int) -> bytes:
    """The body, refusing past `limit` bytes even when no Content-Length was sent (chunked)."""
    parts, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away before sending it all
            raise ApiError(400, "the client disconnected before the request body was complete")
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise ApiError(413, f"request body over {limit} bytes. To fix: send less, or raise "
                           "`body_limit_bytes` in the server config.", code="request_too_large")
        parts.append(part)
        more = message.get("more_body", False)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def route_headers(scope: Scope) -> dict[str, str]:
    """The `X-Murakkab-*` request headers (the only ones routing reads); ASGI servers hand header
    names over lower-cased, so they are compared as they come."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            if name.startswith(_ROUTE_PREFIX)}


class _DisconnectWatch:
    """Cancels the stream's task when its client goes away, once armed and `_WATCH_AFTER_S` later.

    Why armed late: a task waiting on `receive` from the start of every stream cost a third of the
    throughput of short streams (measured with benchmarks/endpoint_throughput.py), and most short
    streams arrive in the engine's first read and end without ever waiting for a second, so they
    never arm it (no task lookup, no timer). A long generation waits, arms it, and is still
    cancelled within that delay of its client leaving.
    """

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._timer = task.get_loop().call_later(_WATCH_AFTER_S, self._start)
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        message: Message = {"type": ""}
        while message["type"] != "http.disconnect":
            message = await self._receive()
        self.gone = True
        self._task.cancel()

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


async def send_stream(result: ChatResult, receive: Receive, send: Send) -> None:
    """SSE out; the result is always closed (slot freed, engine request cancelled) on any exit.

    A client that disconnects mid-stream is noticed (`_DisconnectWatch`) once the stream waits
    for the engine's second read, so the engine request is cancelled instead of generating for
    nobody.
    """
    stream = result.stream
    assert stream is not None
    watch: _DisconnectWatch | None = None
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, (_DEPLOYMENT, result.deployment.encode())]})
        batch, tail, ended = stream.first, DONE_EVENT, False
        while batch is not None:
            try:
                out = stream.render(batch)
            except Exception as e:
                out, batch = stream.error_event(e), None
            if getattr(batch, "last", False):  # the engine ended in this read: one write ends the response
                tail, ended = out + DONE_EVENT, True
                break
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
            if batch is not None:
                if watch is None:
                    watch = _DisconnectWatch(receive)
                try:
                    batch = await anext(stream.upstream, None)
                except Exception as e:
                    tail, batch = stream.error_event(e) + DONE_EVENT, None
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        if ended:
            await stream.finish()
    except asyncio.CancelledError:
        if watch is None or not watch.gone:
            raise  # cancelled from outside (shutdown), not by the watch
    finally:
        if watch is not None:
            watch.stop()
        await stream.close()


ChatHandler = Callable[[Scope, Receive, Send], Awaitable[None]]
CHAT_PATH = "/v1/chat/completions"
STATUS_PATH = "/v1/murakkab/status"


class _Asgi(Response):
    """Lets a FastAPI endpoint hand the request to a raw ASGI handler."""

    def __init__(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        super().__init__()
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


def build_router(service: ChatService) -> tuple[APIRouter, ChatHandler]:
    router = APIRouter()
    metrics = service.metrics
    limit = service.config.body_limit_bytes

    @router.post(CHAT_PATH, responses=_CHAT_RESPONSES, summary="Create a chat completion",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}}})
    async def chat_completions(request: Request) -> Response:
        return _Asgi(chat)

    async def chat(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            raw = await read_body(receive, limit)
            result = await service.chat(raw, route_headers(scope))
        except Exception as e:
            err = api_error_from(e, valid_models=service.model_names())
            metrics.response(err.status)
            await error_response(err)(scope, receive, send)
            return
        metrics.response(200)
        if result.stream is not None:
            await send_stream(result, receive, send)
            return
        body = result.body or b""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_JSON_TYPE, (b"content-length", str(len(body)).encode()),
                                (_DEPLOYMENT, result.deployment.encode())]})
        await send({"type": "http.response.body", "body": body})

    def model_card(name: str) -> dict[str, Any]:
        return Model(id=name, object="model", created=created, owned_by="murakkab").model_dump(exclude_none=True)

    created = int(time.time())

    @router.get("/v1/models", summary="List models: murakkab/<intent> for each intent, then deployments",
                responses=_ERRORS)
    async def list_models() -> Response:
        data = [model_card(n) for n in service.model_names()]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")

    @router.get("/v1/models/{model:path}", summary="Retrieve one model", responses={200: {"model": Model}, **_ERRORS})
    async def get_model(model: str) -> Response:
        if model not in service.model_names():
            return error_response(service.not_found(f"unknown model {model!r}"))
        return Response(orjson.dumps(model_card(model)), media_type="application/json")

    @router.get("/health", summary="Liveness, and which deployments are running")
    async def health() -> Response:
        running = set(service.runtime.running())
        return Response(orjson.dumps({
            "status": "ok",
            "deployments": {n: ("running" if n in running else "stopped") for n in service.runtime.deployments},
            "default": service.runtime.default,
        }), media_type="application/json")

    @router.get(STATUS_PATH, summary="Live state: deployments, replicas, nodes, workflows and re-plans "
                "(Runtime.status())", responses=_ERRORS)
    async def status() -> Response:
        return Response(orjson.dumps(service.runtime.status().model_dump(mode="json")), media_type="application/json")

    @router.get("/metrics", summary="Prometheus metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router, chat
