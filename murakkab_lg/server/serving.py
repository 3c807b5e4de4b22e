"""The chat endpoint's logic: parse, route, admit, call the Runtime, shape the answer.

It returns values, never HTTP objects (vLLM's split): a `ChatResult` holding JSON bytes or an
`SseStream` (the engine's groups of chunks, which the route renders and writes), or an
`ApiError`; `routes.py` turns those into ASGI responses.

Why the hot path looks the way it does: a gateway must cost far less than the engine behind it,
so a request is parsed once with orjson, validated once and strictly against pydantic TypedDicts
(no objects built), forwarded as the client's own JSON (minus our field and any non-OpenAI
extras), a JSON answer is serialised back with orjson without building response objects, and a
streamed one is forwarded as the engine's own bytes (only an event the client must not see is
rewritten). Routes and intents without constraints are cached, so the common
`model="murakkab/<intent>"` call allocates almost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from murakkab_lg.backends.openai_http import SseBatch
from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime import Runtime, Served
from murakkab_lg.server.config import ServeConfig
from murakkab_lg.server.errors import ApiError, api_error_from, validation_message
from murakkab_lg.server.metrics import ServerMetrics
from murakkab_lg.server.protocol import CHAT_REQUEST, FORWARDED_FIELDS, include_usage
from murakkab_lg.spec import Intent, known_intents
from murakkab_lg.wire import BODY_FIELD, DEFAULT_MODELS, MODEL_PREFIX, Route, decode_route

__all__ = ("DEFAULT_MODELS", "DONE_EVENT", "MODEL_PREFIX", "Admission", "ChatResult", "ChatService", "SseStream")

DONE_EVENT = b"data: [DONE]\n\n"
_ALWAYS_USAGE = {"include_usage": True}
log = logging.getLogger(__name__)


class Admission:
    """A bounded queue in front of the Runtime: `max_inflight` served, `max_queue` waiting, rest 429.

    Why: past a point, queueing only adds latency to every request and memory to the server;
    refusing early with Retry-After lets clients (the openai SDK retries 429) back off instead.
    """

    def __init__(self, max_inflight: int, max_queue: int, retry_after_s: int, metrics: ServerMetrics) -> None:
        self.max_inflight = max_inflight
        self.capacity = max_inflight + max_queue
        self.retry_after = str(retry_after_s)
        self.metrics = metrics
        self.admitted = 0  # serving + waiting
        self._sem: asyncio.Semaphore | None = None

    async def enter(self) -> None:
        if self.admitted >= self.capacity:
            self.metrics.rejected += 1
            raise ApiError(
                429, f"the server is at capacity ({self.capacity} requests admitted); retry after "
                f"{self.retry_after} s", type="rate_limit_error", code="server_overloaded",
                headers={"Retry-After": self.retry_after})
        self.admitted += 1
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_inflight)
        if self._sem.locked():
            self.metrics.queued += 1
            try:
                await self._sem.acquire()
            except BaseException:
                self.admitted -= 1
                raise
            finally:
                self.metrics.queued -= 1
        else:
            await self._sem.acquire()
        self.metrics.inflight += 1

    def leave(self) -> None:
        assert self._sem is not None
        self._sem.release()
        self.admitted -= 1
        self.metrics.inflight -= 1


class SseStream:
    """A streamed answer as the route writes it: each group of chunks the engine delivered
    together as SSE bytes (`render`), a failure after the first group as an in-band error event
    (`error_event`), and `close` (admission slot freed, engine request cancelled if still open).

    Why the route drives it and no generator sits between: the route already loops over the
    groups, and each generator layer costs, per stream, its creation, the event loop's
    bookkeeping of it and one resumption per group.
    """

    __slots__ = ("_leave", "_service", "first", "include_usage", "upstream")

    def __init__(self, service: ChatService, upstream: AsyncGenerator[Sequence[dict[str, Any]], None],
                 include_usage: bool) -> None:
        self._service = service
        self._leave: Any = service.admission.leave
        self.first: Sequence[dict[str, Any]] | None = None  # the group read before the response starts
        self.upstream = upstream
        self.include_usage = include_usage

    def render(self, batch: Sequence[dict[str, Any]]) -> bytes:
        """The engine's own bytes where nothing in them must change, else the group serialised
        again without the usage the client did not ask for (b"" when nothing is left)."""
        if not isinstance(batch, SseBatch):  # an engine without raw bytes (in-process, litellm)
            return b"".join(_event(c, self.include_usage) for c in batch)
        if self.include_usage or not batch.carries_usage():
            return batch.raw
        return batch.replace_usage_events(_without_usage)

    def error_event(self, e: Exception) -> bytes:
        """The status line is gone: the error goes in-band, as OpenAI does."""
        err = api_error_from(e, valid_models=self._service.model_names())
        return b"data: " + err.body() + b"\n\n"

    async def finish(self) -> None:
        """After the last group was sent: let the runtime end the call as served (its record, the
        breaker), which closing it early would count as a call cut short."""
        try:
            extra = await anext(self.upstream, None)
        except Exception:  # the answer is complete and sent: nothing to tell the client
            log.warning("streamed call ended with an error after its last chunk was sent", exc_info=True)
            return
        if extra is not None:  # cannot happen with OpenAIClient (it stops at [DONE]); said, not dropped silently
            log.error("engine sent chunks after the end of its stream; they were not forwarded")

    async def close(self) -> None:
        """Safe to call more than once."""
        leave, self._leave = self._leave, None
        if leave is not None:
            leave()
            await self.upstream.aclose()  # cancels the engine request if it is still streaming


@dataclass
class ChatResult:
    """What the route sends: `body` (JSON), or `stream`, which ends without the closing
    `DONE_EVENT`: the route writes that with the end of the response (one write, not two)."""

    deployment: str  # the one that answered (runtime.Served): a fallback's name when one served
    body: bytes | None = None
    stream: SseStream | None = None


class ChatService:
    """POST /v1/chat/completions and GET /v1/models over one Runtime."""

    def __init__(self, runtime: Runtime, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.runtime = runtime
        self.config = config
        self.metrics = metrics
        self.admission = Admission(config.max_inflight, config.max_queue, config.retry_after_s, metrics)
        self._intents: dict[str, Intent] = {}
        self._model_routes: dict[str, Route] = {}

    # -- models -------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """`murakkab/<intent>` for every known intent, then each deployment, then `murakkab` if defaulted."""
        names = [MODEL_PREFIX + i for i in known_intents()] + list(self.runtime.deployments)
        if self.runtime.default is not None:
            names += DEFAULT_MODELS
        return names

    def not_found(self, what: str) -> ApiError:
        return ApiError(404, f"{what}. Valid models: {', '.join(self.model_names())}.",
                        code="model_not_found", param="model")

    # -- routing ------------------------------------------------------------------------------
    def _intent(self, name: str, annotation: dict[str, Any] | None = None) -> Intent:
        if not annotation or annotation.keys() == {"intent"}:
            got = self._intents.get(name)
            if got is not None:
                return got
        if name not in known_intents():
            raise self.not_found(f"unknown intent {name!r}")
        try:
            intent = Intent(**(annotation or {"intent": name}))
        except ValidationError as e:
            msg, param = validation_message(e)
            raise ApiError(400, msg.replace("invalid request", "invalid `murakkab` annotation"),
                           param=f"murakkab.{param}" if param else "murakkab") from None
        if not annotation or annotation.keys() == {"intent"}:
            self._intents[name] = intent
        return intent

    def _route_of_model(self, model: str) -> Route:
        """What the `model` field alone says: an intent, a deployment, or the default."""
        got = self._model_routes.get(model)
        if got is not None:
            return got
        if model in DEFAULT_MODELS:
            route = Route()  # no routing from the model: the body, headers or default decide
        elif model.startswith(MODEL_PREFIX):
            route = Route(intent=self._intent(model[len(MODEL_PREFIX):]))
        elif model in self.runtime.deployments:
            route = Route(deployment=model)
        else:
            raise self.not_found(f"unknown model {model!r}")
        if len(self._model_routes) < 4096:
            self._model_routes[model] = route
        return route

    def route(self, data: Mapping[str, Any], headers: Mapping[str, str]) -> Route:
        """Body field `murakkab` > `X-Murakkab-*` headers > `murakkab/<intent>` > a deployment > default,
        decoded by `wire.decode_route` (the one decoder) with this server's model names and errors."""
        try:
            route = decode_route(data, headers, model_route=self._route_of_model, make_intent=self._intent)
        except ConfigError as e:
            raise ApiError(400, str(e), param=BODY_FIELD) from None
        if route is None:  # unreachable: _route_of_model routes or refuses every name
            return Route()
        if route.deployment is not None and route.deployment not in self.runtime.deployments:
            raise self.not_found(f"unknown deployment {route.deployment!r}")
        return route

    # -- the endpoint -------------------------------------------------------------------------
    def parse(self, raw: bytes) -> dict[str, Any]:
        """The request as the client sent it, once it has passed `ChatCompletionRequest` (strict)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, f"malformed JSON body: {e}. To fix: send one JSON object.") from None
        if not isinstance(data, dict):
            raise ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
        try:
            CHAT_REQUEST.validate_python(data, strict=True)
        except ValidationError as e:
            msg, param = validation_message(e)
            raise ApiError(400, msg, param=param) from None
        return data

    async def chat(self, raw: bytes, headers: Mapping[str, str]) -> ChatResult:
        """One request, end to end; raises ApiError for every failure it can name."""
        data = self.parse(raw)
        route = self.route(data, headers)
        body = {k: v for k, v in data.items() if k in FORWARDED_FIELDS}
        served = Served()  # routing errors (an unknown deployment) surface from the call itself
        await self.admission.enter()
        if data.get("stream"):
            return await self._stream(body, route, served, include_usage(data))
        try:
            resp = await self.runtime.acomplete(body, route, served=served)
        except Exception as e:
            raise api_error_from(e, valid_models=self.model_names()) from None
        finally:
            self.admission.leave()
        return ChatResult(deployment=served.deployment or "", body=orjson.dumps(resp))

    async def _stream(self, body: dict[str, Any], route: Route, served: Served, include_usage: bool) -> ChatResult:
        # Always ask the engine for usage (telemetry needs it); hide it unless the client asked.
        body["stream_options"] = _ALWAYS_USAGE
        upstream = self.runtime.astream_batches(body, route, served=served)
        stream = SseStream(self, upstream, include_usage)
        try:
            stream.first = await upstream.__anext__()  # routing and engine errors become HTTP errors here
        except StopAsyncIteration:
            pass
        except BaseException as e:
            await stream.close()
            if isinstance(e, Exception):
                raise api_error_from(e, valid_models=self.model_names()) from None
            raise
        return ChatResult(deployment=served.deployment or "", stream=stream)


def _without_usage(chunk: dict[str, Any]) -> bytes:
    return _event(chunk, False)


def _event(chunk: dict[str, Any], include_usage: bool) -> bytes:
    """One chunk as an SSE event; the usage the client did not ask for is left out (b"" if nothing is left)."""
    if chunk.get("usage") is not None and not include_usage:
        if not chunk.get("choices"):
            return b""
        chunk = {k: v for k, v in chunk.items() if k != "usage"}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
