"""An OpenAI-compatible engine that answers instantly: the floor for endpoint benchmarks and tests.

Why it exists: to measure what a gateway in front of an engine costs, the engine must cost
(almost) nothing; and to test tool calls and JSON output through the full HTTP stack, the answer
must be predictable, which a 135M-parameter model is not. So this is a raw ASGI app (no framework,
prebuilt byte strings, orjson) run under uvicorn, speaking the same `/v1/chat/completions` JSON and
SSE as llama-server and vLLM. It is a real HTTP server, not a mock; only the "model" is scripted:

- `tools` present and `tool_choice` not "none": one tool call to the forced (or first) function,
  with arguments built from the function's JSON Schema (`example_for_schema`);
- `response_format` json_object / json_schema: JSON content (a schema-shaped example);
- otherwise: `instant: <last user text>`, cut to `max_tokens` / `max_completion_tokens` words,
  and cut before the first `stop` string.

A last user message starting with `@instant` carries test directives, space separated:
`status=503` (answer that HTTP status with an OpenAI error body), `delay=0.5` (seconds before
answering), `chunk_delay=0.2` (seconds between streamed chunks), `words=50` (content length).
`GET /stats` reports requests, streams finished and streams whose client went away, so tests can
check that a gateway cancels the engine request when its own client disconnects.

Run it: `python -m murakkab_lg.testing.instant_engine --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from murakkab_lg.backends.engines._process import ChildProcess, cpu_seconds_of
from murakkab_lg.backends.engines.base import HttpEngine
from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, ProfileStore, Provenance, QualityScore
from murakkab_lg.errors import EngineStartError
from murakkab_lg.spec import ApiSettings, Deployment

__all__ = (
    "InstantEngine",
    "InstantEngineApp",
    "engine_factory",
    "example_for_schema",
    "instant_deployments",
    "main",
    "reply_for",
    "synthetic_profiles",
)

Body = dict[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MODEL = "instant"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def example_for_schema(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies common JSON Schemas (object/array/string/number/enum/const)."""
    if not isinstance(schema, dict) or depth > 8:
        return "x"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for_schema(schema[key][0], depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: example_for_schema(v, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [example_for_schema(schema.get("items") or {}, depth + 1)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * max(1, schema.get("minLength", 1))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _directives(messages: list[Any]) -> dict[str, str]:
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    text = _text(last.get("content")) if last else ""
    if not text.startswith("@instant"):
        return {}
    return dict(part.split("=", 1) for part in text.split()[1:] if "=" in part)


def _tool_call(body: Body) -> Body | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    fns = [t.get("function", {}) for t in tools if isinstance(t, dict)]
    fn = fns[0]
    if isinstance(choice, dict):
        want = (choice.get("function") or {}).get("name")
        fn = next((f for f in fns if f.get("name") == want), fn)
    args = example_for_schema(fn.get("parameters") or {"type": "object", "properties": {}})
    return {"name": fn.get("name", "tool"), "arguments": orjson.dumps(args).decode()}


def reply_for(body: Body) -> tuple[str | None, Body | None]:
    """The scripted answer: (content, None) or (None, tool call {name, arguments})."""
    call = _tool_call(body)
    if call is not None:
        return None, call
    messages = body.get("messages") or []
    fmt = body.get("response_format") or {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return orjson.dumps(example_for_schema(schema)).decode(), None
    if kind == "json_object":
        return '{"answer": "instant"}', None
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    words = ["instant:", *_text(last.get("content")).split()]
    extra = int(_directives(messages).get("words", 0))
    words += ["word"] * extra
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        words = words[:limit]
    text = " ".join(words)
    stops = body.get("stop")
    for s in [stops] if isinstance(stops, str) else (stops or []):
        if s and s in text:
            text = text[: text.index(s)]
    return text, None


def _usage(body: Body, content: str | None, call: Body | None) -> Body:
    prompt = sum(len(_text(m.get("content")).split()) + 1 for m in body.get("messages") or [] if isinstance(m, dict))
    done = len((content or (call or {}).get("arguments", "")).split()) or 1
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


class InstantEngineApp:
    """The raw ASGI app; one instance keeps the /stats counters."""

    def __init__(self) -> None:
        self.stats = {"requests": 0, "streams_finished": 0, "streams_disconnected": 0}
        self._ids = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            await self._chat(receive, send)
        elif path == "/health":
            await _respond(send, 200, b'{"status":"ok"}')
        elif path == "/v1/models":
            await _respond(send, 200, orjson.dumps({"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "murakkab-lg"}]}))
        elif path == "/stats":
            await _respond(send, 200, orjson.dumps(self.stats))
        else:
            await _respond(send, 404, _error("not found", "invalid_request_error"))

    async def _chat(self, receive: Receive, send: Send) -> None:
        self.stats["requests"] += 1
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        try:
            body = orjson.loads(b"".join(chunks))
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("`messages` must be a list")
        except ValueError as e:
            await _respond(send, 400, _error(f"invalid request: {e}", "invalid_request_error"))
            return
        d = _directives(body["messages"])
        if "delay" in d:
            await asyncio.sleep(float(d["delay"]))
        if "status" in d:
            status = int(d["status"])
            kind = "invalid_request_error" if status < 500 else "server_error"
            await _respond(send, status, _error(f"scripted status {status}", kind))
            return
        content, call = reply_for(body)
        rid = f"chatcmpl-instant-{next(self._ids)}"
        model = body.get("model") or MODEL
        if body.get("stream"):
            await self._stream(body, rid, model, content, call, float(d.get("chunk_delay", 0)), receive, send)
            return
        message: Body = {"role": "assistant", "content": content}
        if call is not None:
            message["tool_calls"] = [{"id": f"call_{rid}", "type": "function", "function": call}]
        await _respond(send, 200, orjson.dumps({
            "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if call else "stop"}],
            "usage": _usage(body, content, call),
        }))

    async def _stream(self, body: Body, rid: str, model: str, content: str | None, call: Body | None,
                      chunk_delay: float, receive: Receive, send: Send) -> None:
        head = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def event(delta: Body, finish: str | None = None) -> bytes:
            return b"data: " + orjson.dumps({**head, "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}) + b"\n\n"

        events = [event({"role": "assistant", "content": "" if call is None else None})]
        if call is not None:
            args = call["arguments"]
            half = len(args) // 2
            events.append(event({"tool_calls": [{"index": 0, "id": f"call_{rid}", "type": "function",
                                                 "function": {"name": call["name"], "arguments": ""}}]}))
            events += [event({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                       for part in (args[:half], args[half:]) if part]
        else:
            words = (content or "").split(" ")
            events += [event({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        events.append(event({}, "tool_calls" if call else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": _usage(body, content, call)})
                          + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if chunk_delay <= 0:
            await send({"type": "http.response.body", "body": b"".join(events)})
            self.stats["streams_finished"] += 1
            return
        # Slow stream: watch for the client going away, as a real engine frees its slot then.
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            for ev in events:
                if gone.is_set():
                    break
                try:
                    await send({"type": "http.response.body", "body": ev, "more_body": True})
                except OSError:
                    gone.set()
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), chunk_delay)
            if gone.is_set():
                self.stats["streams_disconnected"] += 1
                return
            await send({"type": "http.response.body", "body": b""})
            self.stats["streams_finished"] += 1
        finally:
            watcher.cancel()


def _error(message: str, kind: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


async def _respond(send: Send, status: int, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": payload})


# -- the engine adapter: run the app as a child process (or attach to one), behind a Runtime ---------


class InstantEngine(HttpEngine):
    """The instant engine as an `HttpEngine`: a child `python -m` process, or an existing server.

    With `base_url` it attaches to a server someone else started (the benchmark points the gateway
    and the direct clients at one engine); otherwise it starts its own on a free port.
    """

    def __init__(self, name: str, base_url: str | None = None) -> None:
        super().__init__(name)
        self.external = base_url
        self.process: ChildProcess | None = None
        if base_url:
            self.base_url = base_url.rstrip("/")

    def start(self, timeout_s: float = 30.0) -> None:
        if self.external is None and (self.process is None or not self.process.alive()):
            port = free_port()
            self.base_url = f"http://127.0.0.1:{port}"
            self._close_clients()
            self.process = ChildProcess([sys.executable, "-m", __name__, "--port", str(port)],
                                        log_path=Path(tempfile.gettempdir()) / f"murakkab-instant-{port}.log")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self.process is not None and not self.process.alive():
                break
            time.sleep(0.05)
        tail = self.process.log_tail() if self.process else ""
        raise EngineStartError(f"instant engine {self.name!r} at {self.base_url} did not become healthy "
                               f"within {timeout_s:.0f} s. {tail}")

    def healthy(self) -> bool:
        try:
            return httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def cpu_seconds(self) -> float | None:
        return cpu_seconds_of(self.process.pid) if self.process is not None else None

    @property
    def reports_cpu(self) -> bool:
        return self.external is None  # attached to a server someone else started: not our process

    def stop(self) -> None:
        self._close_clients()
        if self.process is not None:
            self.process.stop()
            self.process = None


def engine_factory(deployment: Deployment, replica: int, base_url: str | None = None) -> InstantEngine:
    """A Runtime `engine_factory`: attach to `base_url`, or to the deployment's `api_base`, or spawn."""
    url = base_url or getattr(deployment.engine, "api_base", None)
    return InstantEngine(f"{deployment.name}#{replica}", url)


def instant_deployments(names: Sequence[str], base_url: str | None = None) -> list[Deployment]:
    """Deployments served by the instant engine (an OpenAI-compatible API at `base_url`)."""
    return [Deployment(name=n, model=n, engine=ApiSettings(litellm_model=f"openai/{n}", api_base=base_url))
            for n in names]


def synthetic_profiles(deployments: Sequence[Deployment], quality: Mapping[str, Mapping[str, float]],
                       energy_per_token_j: Mapping[str, float] | None = None) -> ProfileStore:
    """Invented profiles for routing tests, and labelled so: provenance says synthetic, not measured.

    `quality[deployment][intent]` is the score the planner sees; energy per output token defaults
    to the deployment's position in `deployments` (first is cheapest), so the energy objective
    picks the first deployment that meets a quality floor.
    """
    prov = Provenance(kind="synthetic", source="synthetic test profile from murakkab_lg.testing.instant_engine: "
                      "invented figures for routing tests, not a measurement and not a publication",
                      date="2025-01-01", license="Apache-2.0 (this project)")
    rows = []
    for i, d in enumerate(deployments):
        e = (energy_per_token_j or {}).get(d.name, 0.1 * (i + 1))
        rows.append(DeploymentProfile(
            deployment=d.name, model=d.model, engine=d.engine.engine, hardware="none (synthetic)",
            quality={k: QualityScore(score=v, metric="synthetic", n=1, ci_low=v, ci_high=v)
                     for k, v in quality.get(d.name, {}).items()},
            load=(LoadPoint(concurrency=1, prefill_tok_s=1e6, tpot_s=1e-4, throughput_tok_s=1e4,
                            energy_per_output_token_j=e),),
            energy_label="estimated", provenance=prov))
    return ProfileStore(rows, "synthetic (instant engine)")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="An OpenAI-compatible engine that answers instantly (tests, benchmarks).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    args = p.parse_args(argv)
    uvicorn.run(InstantEngineApp(), host=args.host, port=args.port, log_level="warning", access_log=False,
                lifespan="on")


if __name__ == "__main__":
    main()
