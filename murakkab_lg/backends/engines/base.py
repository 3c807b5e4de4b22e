"""The engine seam: start/stop, health, and OpenAI chat requests in and out.

Like an httpx transport, an adapter is small: it translates engine settings into a process and
forwards OpenAI-format JSON. Every engine we run (llama-server, vLLM) already speaks the OpenAI
HTTP API, so the forwarding lives here once and adapters only manage their process.

The async path (used by the HTTP server and async LangChain calls) goes through one pooled aiohttp
session per event loop and orjson: measured on a 2-core machine against an engine that answers
instantly, httpx's AsyncClient capped a forwarding server at about 600 req/s, aiohttp at about
2,600 (see benchmarks/endpoint_throughput.py). The sync path keeps httpx.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import orjson

from murakkab_lg.errors import EngineRequestError, EngineUnavailableError

__all__ = ("EngineAdapter", "FunctionEngine", "HttpEngine", "aclose_sessions")

Body = dict[str, Any]
_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=600.0)
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)
_ATIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=600.0)
_JSON = {"content-type": "application/json"}
_sessions: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


def _discard(session: aiohttp.ClientSession) -> None:
    """Drop a session whose event loop has ended: its sockets can only be closed synchronously now."""
    if session.closed:
        return
    connector = session.connector
    session.detach()
    if connector is not None:
        with contextlib.suppress(Exception):  # the loop is gone; closing the transports is best effort
            connector._close()


async def aclose_sessions() -> None:
    """Close every engine session bound to the running loop (call before the loop ends, e.g. in
    a server's shutdown), so no connection or 'Unclosed client session' warning outlives it."""
    import asyncio

    loop = asyncio.get_running_loop()
    for s in list(_sessions):
        if getattr(s, "_murakkab_loop", None) is loop and not s.closed:
            await s.close()


class EngineAdapter(ABC):
    """One engine replica."""

    name: str

    @abstractmethod
    def start(self, timeout_s: float = 120.0) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def healthy(self) -> bool: ...

    def cpu_seconds(self) -> float | None:
        """CPU time the engine has used so far, for estimated energy (None if unknown)."""
        return None

    @abstractmethod
    def complete(self, body: Body) -> Body: ...

    @abstractmethod
    async def acomplete(self, body: Body) -> Body: ...

    @abstractmethod
    def stream(self, body: Body) -> Iterator[Body]: ...

    @abstractmethod
    def astream(self, body: Body) -> AsyncIterator[Body]: ...

    def __enter__(self) -> EngineAdapter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _raise_for(name: str, resp: httpx.Response, text: str) -> None:
    _raise_status(name, resp.status_code, text)


def _raise_status(name: str, status: int, text: str) -> None:
    try:
        body = json.loads(text)
        msg = body.get("error", {}).get("message") or text
    except ValueError:
        body, msg = text, text
    if 400 <= status < 500:
        raise EngineRequestError(
            f"engine {name!r} rejected the request ({status}): {msg}",
            status_code=status, body=body,
        )
    raise EngineUnavailableError(f"engine {name!r} failed ({status}): {msg}")


def _sse_events(lines: Iterator[str]) -> Iterator[Body]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


class HttpEngine(EngineAdapter):
    """Forwards OpenAI chat requests to `base_url`; subclasses own the process behind it."""

    base_url: str = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._asession: aiohttp.ClientSession | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=_TIMEOUT, limits=_LIMITS)
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        # One AsyncClient per event loop: a client bound to a closed loop cannot be reused.
        import asyncio

        loop = asyncio.get_running_loop()
        if self._aclient is None or getattr(self._aclient, "_murakkab_loop", None) is not loop:
            self._aclient = httpx.AsyncClient(base_url=self.base_url, timeout=_TIMEOUT, limits=_LIMITS)
            self._aclient._murakkab_loop = loop  # type: ignore[attr-defined]
        return self._aclient

    @property
    def asession(self) -> aiohttp.ClientSession:
        """The pooled aiohttp session of the running event loop (one per loop, like `aclient`)."""
        import asyncio

        loop = asyncio.get_running_loop()
        s = self._asession
        if s is None or s.closed or getattr(s, "_murakkab_loop", None) is not loop:
            if s is not None and getattr(s, "_murakkab_loop", loop).is_closed():
                _discard(s)
            s = aiohttp.ClientSession(
                timeout=_ATIMEOUT, connector=aiohttp.TCPConnector(limit=_LIMITS.max_connections or 256),
            )
            s._murakkab_loop = loop  # type: ignore[attr-defined]
            _sessions.add(s)
            self._asession = s
        return s

    def _unavailable(self, e: Exception) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"engine {self.name!r} at {self.base_url} is unreachable ({type(e).__name__}: {e})"
        )

    def complete(self, body: Body) -> Body:
        try:
            resp = self.client.post("/v1/chat/completions", json={**body, "stream": False})
        except httpx.TransportError as e:
            raise self._unavailable(e) from e
        if resp.status_code != 200:
            _raise_for(self.name, resp, resp.text)
        return resp.json()

    async def acomplete(self, body: Body) -> Body:
        url = self.base_url + "/v1/chat/completions"
        try:
            async with self.asession.post(url, data=orjson.dumps({**body, "stream": False}), headers=_JSON) as resp:
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._unavailable(e) from e
        if resp.status != 200:
            _raise_status(self.name, resp.status, raw.decode(errors="replace"))
        return orjson.loads(raw)

    def stream(self, body: Body) -> Iterator[Body]:
        try:
            with self.client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
                if resp.status_code != 200:
                    _raise_for(self.name, resp, resp.read().decode(errors="replace"))
                yield from _sse_events(resp.iter_lines())
        except httpx.TransportError as e:
            raise self._unavailable(e) from e

    async def astream(self, body: Body) -> AsyncIterator[Body]:
        url = self.base_url + "/v1/chat/completions"
        try:
            async with self.asession.post(url, data=orjson.dumps({**body, "stream": True}), headers=_JSON) as resp:
                if resp.status != 200:
                    _raise_status(self.name, resp.status, (await resp.read()).decode(errors="replace"))
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    if data:
                        yield orjson.loads(data)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._unavailable(e) from e

    def _close_clients(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._aclient = None  # its loop may be gone; the connections close with it
        session, self._asession = self._asession, None
        loop = getattr(session, "_murakkab_loop", None)
        if session is None or session.closed or loop is None:
            return
        if loop.is_closed():
            _discard(session)
            return
        import asyncio

        with contextlib.suppress(RuntimeError):  # the loop stopped between the check and the call
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(session.close()))


class FunctionEngine(EngineAdapter):
    """A fake engine that wraps a function `body -> response body`, for tests of the layers above."""

    def __init__(self, name: str, fn: Callable[[Body], Body]) -> None:
        self.name = name
        self.fn = fn
        self.running = False

    def start(self, timeout_s: float = 120.0) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def healthy(self) -> bool:
        return self.running

    def complete(self, body: Body) -> Body:
        return self.fn(body)

    async def acomplete(self, body: Body) -> Body:
        return self.fn(body)

    def stream(self, body: Body) -> Iterator[Body]:
        yield from _as_chunks(self.fn(body))

    async def astream(self, body: Body) -> AsyncIterator[Body]:
        for chunk in _as_chunks(self.fn(body)):
            yield chunk


def _as_chunks(resp: Body) -> Iterator[Body]:
    choice = resp["choices"][0]
    base = {"id": resp.get("id", "fake"), "object": "chat.completion.chunk",
            "created": resp.get("created", 0), "model": resp.get("model", "fake")}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    content = choice["message"].get("content") or ""
    for word in content.split(" "):
        yield {**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
           "usage": resp.get("usage")}
