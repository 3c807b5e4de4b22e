"""The engine seam: start/stop, health, and OpenAI chat requests in and out.

Like an httpx transport, an adapter is small: it translates engine settings into a process and
forwards OpenAI-format JSON. Every engine we run (llama-server, vLLM) already speaks the OpenAI
HTTP API, so the forwarding lives here once and adapters only manage their process.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from murakkab_lg.errors import EngineRequestError, EngineUnavailableError

__all__ = ("EngineAdapter", "FunctionEngine", "HttpEngine")

Body = dict[str, Any]
_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=600.0)
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


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
    try:
        body = json.loads(text)
        msg = body.get("error", {}).get("message") or text
    except ValueError:
        body, msg = text, text
    if 400 <= resp.status_code < 500:
        raise EngineRequestError(
            f"engine {name!r} rejected the request ({resp.status_code}): {msg}",
            status_code=resp.status_code, body=body,
        )
    raise EngineUnavailableError(f"engine {name!r} failed ({resp.status_code}): {msg}")


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
        try:
            resp = await self.aclient.post("/v1/chat/completions", json={**body, "stream": False})
        except httpx.TransportError as e:
            raise self._unavailable(e) from e
        if resp.status_code != 200:
            _raise_for(self.name, resp, resp.text)
        return resp.json()

    def stream(self, body: Body) -> Iterator[Body]:
        try:
            with self.client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
                if resp.status_code != 200:
                    _raise_for(self.name, resp, resp.read().decode(errors="replace"))
                yield from _sse_events(resp.iter_lines())
        except httpx.TransportError as e:
            raise self._unavailable(e) from e

    async def astream(self, body: Body) -> AsyncIterator[Body]:
        try:
            async with self.aclient.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
                if resp.status_code != 200:
                    _raise_for(self.name, resp, (await resp.aread()).decode(errors="replace"))
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    if data:
                        yield json.loads(data)
        except httpx.TransportError as e:
            raise self._unavailable(e) from e

    def _close_clients(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._aclient = None  # its loop may be gone; the connections close with it


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
