"""A real OpenAI-compatible HTTP server with scripted answers that records every request.

Why: tests of interception must prove what went over the wire (the `murakkab` body field, the
`X-Murakkab-*` headers, `model="murakkab/<intent>"`, tools, `response_format`) and must get answers
a 135M-parameter model cannot give reliably (two-tool agent plans, exact JSON). So this is a
Starlette app under uvicorn in a background thread on a free 127.0.0.1 port, speaking
`/v1/chat/completions` JSON and SSE like llama-server and vLLM; only the "model" is a Python
function, the `responder`, which sees each recorded request and returns a `Reply` (plain text,
tool calls, JSON, or an HTTP error). Without a responder it answers like `instant_engine`.

Token counts in `usage` are whitespace-separated words, an approximation stated here so nobody
mistakes them for a tokenizer's.

A `ServiceTime` (per server or per model) makes answers take time the way an engine's do: a base
plus a time per output token, at most `slots` calls at once (the rest wait their turn), each
slowed by `contention` per other call in service. `extra_delay_s[model]` adds a delay to one
model's calls from now on (tests inject a slow engine with it).

`ScriptedEngine` is the engine adapter over such a server, and `scripted_runtime` builds a Runtime
whose deployments are served by it, planned with `synthetic_profile` rows that say in their
provenance that they are test fixtures, not measurements.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from murakkab_lg.backends.engines.base import HttpEngine
from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, ProfileStore, Provenance, QualityScore
from murakkab_lg.errors import EngineStartError
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import ApiSettings, Deployment, intent_metric
from murakkab_lg.testing.instant_engine import reply_for

__all__ = (
    "RecordedRequest",
    "Reply",
    "ScriptedEngine",
    "ScriptedServer",
    "ServiceTime",
    "ToolCall",
    "scripted_runtime",
    "synthetic_profile",
)

Body = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted answer: text, tool calls, or an HTTP error (`status` != 200)."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200

    @classmethod
    def text(cls, content: str) -> Reply:
        return cls(content=content)

    @classmethod
    def json(cls, value: Any) -> Reply:
        return cls(content=json.dumps(value))

    @classmethod
    def tools(cls, *calls: ToolCall) -> Reply:
        return cls(tool_calls=calls)

    @classmethod
    def error(cls, status: int, message: str) -> Reply:
        return cls(content=message, status=status)


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received: lower-cased headers and the parsed JSON body."""

    server: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    received_at: float

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def murakkab(self) -> Mapping[str, Any] | None:
        return self.body.get("murakkab")

    @property
    def messages(self) -> list[Body]:
        return list(self.body.get("messages") or [])

    def text(self) -> str:
        """All message text, for responders that answer by prompt content."""
        out = []
        for m in self.messages:
            c = m.get("content")
            out.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict)))
        return "\n".join(out)


Responder = Callable[[RecordedRequest], Reply | str]


@dataclass(frozen=True)
class ServiceTime:
    """How long a scripted answer takes: (base + per_token x output tokens) x (1 + contention x
    other calls in service), with at most `slots` in service (None: no limit)."""

    base_s: float = 0.0
    per_token_s: float = 0.0
    slots: int | None = None
    contention: float = 0.0


class _Service:
    """One model's service: its slots, and how many calls are in service now (one event loop)."""

    def __init__(self, spec: ServiceTime) -> None:
        self.spec = spec
        self.sem = asyncio.Semaphore(spec.slots) if spec.slots else None
        self.active = 0

    async def serve(self, tokens: int, extra_s: float) -> None:
        if self.sem is not None:
            await self.sem.acquire()
        self.active += 1
        try:
            t = (self.spec.base_s + self.spec.per_token_s * tokens) * (1 + self.spec.contention * (self.active - 1))
            await asyncio.sleep(t + extra_s)
        finally:
            self.active -= 1
            if self.sem is not None:
                self.sem.release()


def _default_reply(req: RecordedRequest) -> Reply:
    content, call = reply_for(dict(req.body))
    if call is not None:
        return Reply.tools(ToolCall(call["name"], json.loads(call["arguments"])))
    return Reply.text(content or "")


def _words(text: str) -> int:
    return len(text.split())


class ScriptedServer:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, responder: Responder | None = None, *, name: str = "scripted",
                 token_delay_s: float = 0.0, service: ServiceTime | Mapping[str, ServiceTime] | None = None,
                 models: tuple[str, ...] = ()) -> None:
        self.name = name
        self.models = models or (name,)  # what GET /v1/models lists (any model name is answered)
        self.responder = responder or _default_reply
        self.token_delay_s = token_delay_s
        self.service = service
        self.extra_delay_s: dict[str, float] = {}  # model -> seconds added to each of its calls
        self._services: dict[str, _Service] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise EngineStartError(f"scripted server {self.name!r} is not started. To fix: call start() first.")
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (`.../v1`), for ChatOpenAI(base_url=...) and friends."""
        return self.base_url + "/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and bool(getattr(self._server, "started", False))

    def start(self, timeout_s: float = 10.0) -> ScriptedServer:
        if self.running:
            return self
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"scripted-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise EngineStartError(f"scripted server {self.name!r} did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- recorded traffic ---------------------------------------------------------------------
    def received(self, **match: Any) -> list[RecordedRequest]:
        """Recorded chat requests whose body fields equal `match` (e.g. model="small")."""
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if all(r.body.get(k) == v for k, v in match.items())]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the app ------------------------------------------------------------------------------
    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def chat(request: Request) -> Response:
            try:
                body = json.loads(await request.body())
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    raise ValueError("`messages` must be a list")
            except ValueError as e:
                return JSONResponse(_error(f"invalid request: {e}"), status_code=400)
            rec = RecordedRequest(server=self.name, path=request.url.path, headers=dict(request.headers),
                                  body=body, received_at=time.time())
            with self._lock:
                self.requests.append(rec)
            try:
                reply = self.responder(rec)
            except Exception as e:  # a broken script is a 500 the test will see, not a hung request
                return JSONResponse(_error(f"responder failed: {type(e).__name__}: {e}"), status_code=500)
            if isinstance(reply, str):
                reply = Reply.text(reply)
            if reply.status != 200:
                return JSONResponse(_error(reply.content or "scripted error"), status_code=reply.status)
            rid = f"chatcmpl-{self.name}-{next(self._ids)}"
            model = body.get("model") or self.name
            await self._serve(model, rec, reply)
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(self._sse(rec, reply, rid, model, include_usage),
                                         media_type="text/event-stream")
            return JSONResponse(self._completion(rec, reply, rid, model))

        async def health(_: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def models(_: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                             "owned_by": "murakkab-lg"} for m in self.models]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/health", health), Route("/v1/models", models)])

    async def _serve(self, model: str, rec: RecordedRequest, reply: Reply) -> None:
        spec = self.service.get(model) if isinstance(self.service, Mapping) else self.service
        extra = self.extra_delay_s.get(model, 0.0)
        if spec is None:
            if extra > 0:
                await asyncio.sleep(extra)
            return
        svc = self._services.get(model)
        if svc is None:
            svc = self._services[model] = _Service(spec)
        await svc.serve(self._usage(rec, reply)["completion_tokens"], extra)

    @staticmethod
    def _usage(rec: RecordedRequest, reply: Reply) -> Body:
        prompt = _words(rec.text()) + len(rec.messages)
        done = max(1, _words(reply.content or "") + sum(_words(json.dumps(c.arguments)) for c in reply.tool_calls))
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}

    def _tool_calls(self, reply: Reply, rid: str) -> list[Body]:
        return [{"id": c.id or f"call_{rid}_{i}", "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for i, c in enumerate(reply.tool_calls)]

    def _completion(self, rec: RecordedRequest, reply: Reply, rid: str, model: str) -> Body:
        message: Body = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply, rid)
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
                "usage": self._usage(rec, reply)}

    async def _sse(self, rec: RecordedRequest, reply: Reply, rid: str, model: str,
                   include_usage: bool) -> AsyncIterator[bytes]:
        head = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def event(delta: Body, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n".encode()

        events = [event({"role": "assistant", "content": ""})]
        if reply.content:
            words = reply.content.split(" ")
            events += [event({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        for i, call in enumerate(self._tool_calls(reply, rid)):
            args = call["function"]["arguments"]
            events.append(event({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                 "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            events.append(event({"tool_calls": [{"index": i, "function": {"arguments": args}}]}))
        events.append(event({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage:
            events.append(f"data: {json.dumps({**head, 'choices': [], 'usage': self._usage(rec, reply)})}\n\n".encode())
        events.append(b"data: [DONE]\n\n")
        for ev in events:
            yield ev
            if self.token_delay_s > 0:
                await asyncio.sleep(self.token_delay_s)

    # -- engines and runtimes over this server ------------------------------------------------
    def engine(self, name: str) -> ScriptedEngine:
        return ScriptedEngine(name, self)


def _error(message: str) -> Body:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


class ScriptedEngine(HttpEngine):
    """An engine adapter whose replica is a ScriptedServer; the request's `model` is the deployment."""

    def __init__(self, name: str, server: ScriptedServer) -> None:
        super().__init__(name)
        self.server = server

    def start(self, timeout_s: float = 120.0) -> None:
        self.server.start()
        self.base_url = self.server.base_url
        self._close_clients()

    def stop(self) -> None:
        self._close_clients()

    def healthy(self) -> bool:
        return self.server.running


def synthetic_profile(deployment: str, *, quality: Mapping[str, float], tpot_s: float = 0.01,
                      prefill_tok_s: float = 1000.0, energy_per_output_token_j: float = 0.1,
                      memory_gb: float = 1.0) -> DeploymentProfile:
    """A profile row for tests and examples; its provenance says it is a fixture, not a measurement."""
    return DeploymentProfile(
        deployment=deployment, model=deployment, engine="scripted", hardware="none (scripted test server)",
        quality={k: QualityScore(score=v, metric=intent_metric(k), n=1, ci_low=v, ci_high=v)
                 for k, v in quality.items()},
        load=(LoadPoint(concurrency=1, prefill_tok_s=prefill_tok_s, tpot_s=tpot_s,
                        throughput_tok_s=1.0 / tpot_s, energy_per_output_token_j=energy_per_output_token_j),),
        memory_gb=memory_gb, energy_label="estimated",
        provenance=Provenance(kind="synthetic", source="synthetic fixture (murakkab_lg.testing): not a measurement",
                              date=_dt.date.today().isoformat(), license="Apache-2.0"),
    )


def scripted_runtime(server: ScriptedServer, profiles: Mapping[str, DeploymentProfile | Mapping[str, float]],
                     **kwargs: Any) -> Runtime:
    """A Runtime whose deployments (one per `profiles` key) are all served by `server`.

    A mapping value is the deployment's quality per intent (see `synthetic_profile`).
    """
    rows = [p if isinstance(p, DeploymentProfile) else synthetic_profile(name, quality=p)
            for name, p in profiles.items()]
    deployments = [Deployment(name=r.deployment, model=r.deployment,
                              engine=ApiSettings(litellm_model=f"openai/{r.deployment}", api_base=server.url
                                                 if server.port else None))
                   for r in rows]
    store = ProfileStore(rows, source="synthetic fixture (murakkab_lg.testing)")
    return Runtime(deployments, store, engine_factory=lambda d, _i: server.engine(d.name), **kwargs)
