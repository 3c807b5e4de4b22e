"""Thin routes: read the request, call `ChatService`, map its result to a Starlette response.

No logic lives here beyond HTTP plumbing (vLLM's api_router split), so the behaviour is tested
once in serving.py's terms and the routes only decide status codes, headers and media types.

`build_router` also returns the chat handler itself: `app.Guard` calls it directly for
`POST /v1/chat/completions`, skipping FastAPI's router and middleware stack on the hot path
(measured ~30 us of ~250 us CPU per request); the registered route documents the same handler
in the OpenAPI schema and serves it when the router is mounted without the Guard.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from openai.types import Model
from openai.types.chat import ChatCompletion
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from murakkab_lg.server.errors import ApiError, ErrorEnvelope, api_error_from, error_response
from murakkab_lg.server.metrics import CONTENT_TYPE_LATEST
from murakkab_lg.server.serving import ChatResult, ChatService

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


class SSEResponse(StreamingResponse):
    """Streams a ChatResult; always closes it (frees the slot, cancels the engine) on any exit."""

    def __init__(self, result: ChatResult) -> None:
        assert result.stream is not None
        super().__init__(result.stream, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-murakkab-deployment": result.deployment})
        self.result = result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.result.close()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing past `limit` bytes even when no Content-Length was sent (chunked)."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise ApiError(413, f"request body over {limit} bytes. To fix: send less, or raise "
                           "`body_limit_bytes` in the server config.", code="request_too_large")
        parts.append(part)
    return b"".join(parts)


ChatHandler = Callable[[Request], Awaitable[Response]]
CHAT_PATH = "/v1/chat/completions"
STATUS_PATH = "/v1/murakkab/status"


def build_router(service: ChatService) -> tuple[APIRouter, ChatHandler]:
    router = APIRouter()
    metrics = service.metrics
    limit = service.config.body_limit_bytes
    codes: dict[int, Any] = {}

    def count(status: int) -> None:
        child = codes.get(status)
        if child is None:
            child = codes[status] = metrics.http.labels(str(status))
        child.inc()

    @router.post(CHAT_PATH, responses=_CHAT_RESPONSES, summary="Create a chat completion",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}}})
    async def chat_completions(request: Request) -> Response:
        try:
            raw = await read_body(request, limit)
            result = await service.chat(raw, request.headers)
        except Exception as e:
            err = api_error_from(e, valid_models=service.model_names())
            count(err.status)
            return error_response(err)
        count(200)
        if result.stream is not None:
            return SSEResponse(result)
        return Response(result.body, media_type="application/json",
                        headers={"x-murakkab-deployment": result.deployment})

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

    return router, chat_completions
