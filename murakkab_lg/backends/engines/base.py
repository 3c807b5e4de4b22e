"""The engine seam: start/stop, health, and OpenAI chat requests in and out.

Like an httpx transport, an adapter is small: it translates engine settings into a process and
forwards OpenAI-format JSON. Every engine we run (llama-server, vLLM, an existing server) speaks
the OpenAI HTTP API, so forwarding lives once in `backends.openai_http.OpenAIClient` (errors,
SSE, a keep-alive pool for the async path) and adapters only manage what stands behind the URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx

from murakkab_lg.backends.openai_http import OpenAIClient, aclose_connections

__all__ = ("EngineAdapter", "FunctionEngine", "HttpEngine", "aclose_connections")

Body = dict[str, Any]


class EngineAdapter(ABC):
    """One engine replica."""

    name: str
    draining: bool = False  # True once an engine that can drain (vLLM) stops taking new requests

    @abstractmethod
    def start(self, timeout_s: float = 120.0) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def healthy(self) -> bool: ...

    def cpu_seconds(self) -> float | None:
        """CPU time the engine has used so far, for estimated energy (None if unknown)."""
        return None

    @property
    def reports_cpu(self) -> bool:
        """Can `cpu_seconds` ever answer? False for an engine whose process is not ours (a server
        someone else runs, a hosted API): its calls then skip the CPU meter (energy unknown)."""
        return type(self).cpu_seconds is not EngineAdapter.cpu_seconds

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What a call cost in money where the engine has a price (hosted APIs); None otherwise
        (a self-hosted engine's cost is its energy and hardware, not a per-token price)."""
        return None

    @abstractmethod
    def complete(self, body: Body) -> Body: ...

    @abstractmethod
    async def acomplete(self, body: Body) -> Body: ...

    @abstractmethod
    def stream(self, body: Body) -> Iterator[Body]: ...

    @abstractmethod
    def astream(self, body: Body) -> AsyncIterator[Body]: ...

    async def astream_batches(self, body: Body) -> AsyncIterator[Sequence[Body]]:
        """The async stream in the groups the engine delivered them (see OpenAIClient.astream_batches);
        an engine that cannot tell yields one chunk per group."""
        async for chunk in self.astream(body):
            yield [chunk]

    def __enter__(self) -> EngineAdapter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpEngine(EngineAdapter):
    """Forwards OpenAI chat requests to `base_url`; subclasses own the process behind it."""

    base_url: str = ""
    api_prefix: str = "/v1"  # where the OpenAI API sits under base_url
    api_key: str | None = None
    close_streamed_connections: bool = False  # True for servers that drop a stream's keep-alive connection
    served_model: str | None = None  # the name the server knows the model by, when not the deployment's
    _api_for: str = ""  # the base_url that `api` was built for

    def __init__(self, name: str) -> None:
        self.name = name
        self._api: OpenAIClient | None = None

    @property
    def api(self) -> OpenAIClient:
        """The client for the current `base_url` (rebuilt when a restart moves the engine)."""
        api = self._api
        if api is None or self._api_for != self.base_url:  # asked on every call: compared, not normalised
            if api is not None:
                api.close()
            api = self._api = OpenAIClient(self.base_url, who=f"engine {self.name!r}", prefix=self.api_prefix,
                                           api_key=self.api_key, close_streams=self.close_streamed_connections)
            self._api_for = self.base_url
        return api

    @property
    def client(self) -> httpx.Client:
        """A pooled sync client on the server root, for engine-specific paths (`/health`, `/slots`)."""
        return self.api.http

    def _out(self, body: Body) -> Body:
        return body if self.served_model is None else {**body, "model": self.served_model}

    def complete(self, body: Body) -> Body:
        return self.api.complete(self._out(body))

    async def acomplete(self, body: Body) -> Body:
        return await self.api.acomplete(self._out(body))

    def stream(self, body: Body) -> Iterator[Body]:
        return self.api.stream(self._out(body))

    def astream(self, body: Body) -> AsyncIterator[Body]:
        return self.api.astream(self._out(body))

    def astream_batches(self, body: Body) -> AsyncIterator[Sequence[Body]]:
        # A subclass that changes `astream` (tool constraints, drain counting) without saying how
        # its batches look gets one chunk per group, so its change is never bypassed.
        if type(self).astream is not HttpEngine.astream:
            return EngineAdapter.astream_batches(self, body)
        return self._api_batches(body)

    def _api_batches(self, body: Body) -> AsyncIterator[Sequence[Body]]:
        return self.api.astream_batches(self._out(body))

    def _close_clients(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            api.close()


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
