"""The one OpenAI HTTP client: chat requests out, JSON or SSE chunks back, errors mapped.

Both ways a call leaves this process go through it: the runtime's engine adapters (`HttpEngine`:
llama-server, vLLM, an existing OpenAI-compatible server) and server mode (`HttpTarget`: calls
intercepted in a graph sent to `murakkab serve`). So error mapping, SSE parsing and the usage /
time-to-first-token bookkeeping are written once:

- 4xx -> `EngineRequestError` (the request is at fault; 429 too, with `status_code` 429 so a retry
  layer can tell "slow down" from "bad input"); 5xx -> `EngineUnavailableError` with its
  `status_code` (503 "overloaded" stays distinguishable from a crash); transport failures ->
  `EngineUnavailableError` with `status_code=None`.
- `CallStats`, when passed, records latency, TTFT (first chunk with choices), usage, the model
  the server named and the response headers.

Why two HTTP clients: the async path (the HTTP server, async LangChain calls, profiling) is the
one a gateway pays for on every request, so it uses `http1.Http1Pool` (httptools-parsed, one
keep-alive pool per event loop) and orjson. Measured on a 2-core machine against an engine that
answers instantly (benchmarks/http_client.py): httpx's AsyncClient capped a forwarding server at
about 600 req/s; aiohttp, used here before, cost about 60 µs of CPU per streamed request, and the
pool about a third of that. The sync path keeps httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import orjson

from murakkab_lg.backends.http1 import Http1Pool, aclose_pools, encode_headers, request_head
from murakkab_lg.errors import EngineError, EngineRequestError, EngineUnavailableError

__all__ = ("CallStats", "OpenAIClient", "SseBatch", "aclose_connections", "error_for_status")

Body = dict[str, Any]
_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=600.0)
_MAX_CONNECTIONS = 256
_JSON = {"content-type": "application/json"}
_CLOSE = {"connection": "close"}
_DONE = object()
# After `data: [DONE]`, how long to wait for the end of the chunked response (a server that writes
# it separately, as uvicorn's StreamingResponse does) so the connection can be kept for reuse.
_END_WAIT_S = 1.0
_CHOICE = re.compile(rb'"choices"\s*:\s*\[\s*[^\]\s]')  # a non-empty "choices" list


def error_for_status(who: str, status: int, text: str) -> EngineError:
    """The error for a non-200 answer; `who` starts the message ("engine 'small'", a URL)."""
    try:
        body: Any = orjson.loads(text)
        err = body.get("error") if isinstance(body, dict) else None
        msg = (err.get("message") if isinstance(err, dict) else err) or text
    except orjson.JSONDecodeError:
        body, msg = text, text
    if 400 <= status < 500:
        return EngineRequestError(f"{who} rejected the request ({status}): {msg}", status_code=status, body=body)
    return EngineUnavailableError(f"{who} failed ({status}): {msg}", status_code=status)


def _event(line: bytes | str) -> Any:
    """One SSE line -> a chunk, `_DONE` at `data: [DONE]`, or None for anything else."""
    if isinstance(line, str):
        line = line.encode()
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    if data == b"[DONE]":
        return _DONE
    return orjson.loads(data) if data else None


class SseBatch(Sequence[Body]):
    """The complete SSE events of one network read: `raw`, the bytes exactly as the engine sent
    them (its closing `data: [DONE]` left out), and the chunks in them, parsed on first use.

    Why lazy: a gateway forwards the engine's bytes and needs only two facts from them, when the
    first token came (`has_choices`) and the usage (`usage`); parsing every chunk with orjson was
    the largest part of what a forwarded stream cost it. Iterating or indexing parses them all
    (`astream`, the LangChain path, wants the chunks).
    """

    __slots__ = ("_chunks", "_lines", "_usage_at", "last", "raw")

    def __init__(self, raw: bytes, last: bool = False) -> None:
        self.raw = raw
        self.last = last  # the engine ended the stream in the same read: nothing follows
        self._lines: list[bytes] | None = None
        self._chunks: list[Body] | None = None
        self._usage_at: list[tuple[int, int, Body]] | None = None

    @property
    def lines(self) -> list[bytes]:
        """Each event's `data:` line, without its line ending."""
        if self._lines is None:
            self._lines = [line.rstrip() for line in self.raw.split(b"\n") if line.startswith(b"data:")]
        return self._lines

    @property
    def chunks(self) -> list[Body]:
        if self._chunks is None:
            self._chunks = [c for c in map(_event, self.lines) if c is not None and c is not _DONE]
        return self._chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: Any) -> Any:
        return self.chunks[i]

    def __iter__(self) -> Iterator[Body]:
        return iter(self.chunks)

    def __repr__(self) -> str:
        return f"SseBatch({self.raw!r})"

    def has_choices(self) -> bool:
        """Whether some chunk here carries a choice (the mark of the first token), read from the
        bytes: a `"choices"` key whose list is not empty. Safe without a parse because a quote
        inside a JSON string is escaped, so the text of an answer cannot spell the key."""
        if self._chunks is not None:
            return any(c.get("choices") for c in self._chunks)
        return _CHOICE.search(self.raw) is not None

    def _usage_events(self) -> list[tuple[int, int, Body]]:
        """The events that carry a usage object: (start, end of their line in `raw`, chunk). Found
        by the `"usage"` key followed by an object, so `"usage": null` costs no parse."""
        if self._usage_at is not None:
            return self._usage_at
        raw, found = self.raw, []
        i = raw.find(b'"usage"')
        while i >= 0:
            j = i + 7
            while raw[j:j + 1] in (b" ", b"\t", b":"):
                j += 1
            if raw[j:j + 1] == b"{" and (not found or found[-1][1] < i):
                start = raw.rfind(b"\n", 0, i) + 1
                end = raw.find(b"\n", i)
                end = len(raw) if end < 0 else end
                chunk = _event(raw[start:end].rstrip())
                if isinstance(chunk, dict) and chunk.get("usage"):
                    found.append((start, end, chunk))
            i = raw.find(b'"usage"', j)
        self._usage_at = found
        return found

    def carries_usage(self) -> bool:
        """Whether some event here carries a usage object."""
        return bool(self._usage_events())

    def usage(self) -> Body | None:
        """The last usage object in this batch, parsing only the events that hold one."""
        found = self._usage_events()
        return found[-1][2]["usage"] if found else None

    def replace_usage_events(self, replace: Callable[[Body], bytes]) -> bytes:
        """`raw` with each event that carries a usage object swapped for `replace(chunk)` (which
        may be b"" to drop it); every other byte is the engine's own."""
        raw, out, pos = self.raw, [], 0
        for start, end, chunk in self._usage_events():
            stop = end + 1  # and the blank line that ends the event
            stop += 1 if raw[stop:stop + 1] == b"\n" else 2 if raw[stop:stop + 2] == b"\r\n" else 0
            out += (raw[pos:start], replace(chunk))
            pos = stop
        out.append(raw[pos:])
        return b"".join(out)


def _split_done(block: bytes) -> tuple[bytes, bool]:
    """`block` up to the `data: [DONE]` event, and whether that event was in it."""
    i = block.rfind(b"[DONE]")  # the last event of a stream, so the last match if it is here
    if i < 0:
        return block, False
    start = block.rfind(b"\n", 0, i) + 1
    if block[start:i].replace(b" ", b"") != b"data:":
        return block, False  # "[DONE]" in some text, not the event
    return block[:start], True


def _events_end(data: bytes) -> int:
    """Where the last complete event in `data` ends (after its blank line), 0 if none has.

    Cut anywhere else, the bytes forwarded as they came would split an event from the blank line
    that ends it, and a client would read the next event's data as part of this one."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def _batch(block: bytes, last: bool, stats: CallStats | None) -> SseBatch | None:
    """The batch of one read's complete events, None when they hold no `data:` line."""
    if not (block.startswith(b"data:") or b"\ndata:" in block):
        return None
    batch = SseBatch(block, last=last)
    if stats is not None:  # its caller (astream) parses every chunk anyway
        for chunk in batch:
            stats.saw(chunk)
    return batch


class CallStats:
    """What one call took and returned: latency, TTFT, usage, model and response headers."""

    __slots__ = ("headers", "model", "t0", "ttft_s", "usage", "wall0")

    def __init__(self) -> None:
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.ttft_s: float | None = None
        self.usage: Body | None = None
        self.model: str | None = None
        self.headers: Mapping[str, str] = {}

    @property
    def latency_s(self) -> float:
        return time.perf_counter() - self.t0

    def saw(self, chunk: Body) -> None:
        """A streamed chunk arrived: the first one with choices marks the TTFT."""
        if self.ttft_s is None and chunk.get("choices"):
            self.ttft_s = time.perf_counter() - self.t0
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if self.model is None and chunk.get("model"):
            self.model = str(chunk["model"])

    def got(self, resp: Body) -> None:
        """A whole (non-streamed) answer arrived."""
        self.usage = resp.get("usage")
        self.model = str(resp["model"]) if resp.get("model") else None


async def aclose_connections() -> None:
    """Close every async connection bound to the running loop (call before the loop ends, e.g. in
    a server's shutdown), so no connection outlives it."""
    await aclose_pools()


class OpenAIClient:
    """Chat completions (JSON and SSE) and `GET /models` against one OpenAI-compatible server.

    `base_url` is the server root and `prefix` the API root under it (`/v1`), so root paths such
    as llama-server's `/health` stay reachable through `http`. `who` and `unreachable_hint` word
    the errors ("engine 'small'"; "To fix: start it with ...").
    """

    def __init__(self, base_url: str, *, who: str, prefix: str = "/v1", api_key: str | None = None,
                 headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
                 unreachable_hint: str = "", close_streams: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        # Only for servers that close a streamed response's connection while announcing keep-alive
        # (llama-server): a fresh connection per stream costs ~1 ms of gateway CPU per request.
        self._stream_extra = _CLOSE if close_streams else {}
        self.chat_url = self.base_url + prefix + "/chat/completions"
        self.models_url = self.base_url + prefix + "/models"
        self.who = who
        self.hint = unreachable_hint
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = _TIMEOUT if timeout_s is None else httpx.Timeout(timeout_s, connect=5.0)
        self._read_timeout_s = timeout_s or 600.0
        self._http: httpx.Client | None = None
        self._pool: Http1Pool | None = None
        # The request head and header lines as they go on the wire, built once (per call only
        # a call's own headers are encoded).
        self._chat_head = request_head("POST", self.chat_url)
        self._post_headers = encode_headers({**_JSON, **self.headers})
        self._stream_headers = self._post_headers + encode_headers(self._stream_extra)

    # -- connections --------------------------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        """The pooled sync client (base URL: the server root)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self._timeout, headers=self.headers,
                                      limits=httpx.Limits(max_connections=_MAX_CONNECTIONS,
                                                          max_keepalive_connections=64))
        return self._http

    @property
    def pool(self) -> Http1Pool:
        """The keep-alive pool of the running event loop (connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop or pool.closed:
            if pool is not None and pool.loop.is_closed():
                pool.close()  # its loop has ended: the sockets can only be closed synchronously now
            pool = self._pool = Http1Pool(self.base_url, limit=_MAX_CONNECTIONS, connect_timeout_s=5.0,
                                          read_timeout_s=self._read_timeout_s)
        return pool

    def unavailable(self, e: BaseException) -> EngineUnavailableError:
        hint = f" {self.hint}" if self.hint else ""
        return EngineUnavailableError(f"{self.who} at {self.base_url} is unreachable ({type(e).__name__}: {e}).{hint}")

    def close(self) -> None:
        """Close the sync client now and the async pool on its loop (or at once, loop gone)."""
        if self._http is not None:
            self._http.close()
            self._http = None
        pool, self._pool = self._pool, None
        if pool is None or pool.closed:
            return
        if pool.loop.is_closed():
            pool.close()
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped between the check and the call
            pool.loop.call_soon_threadsafe(pool.close)

    async def aclose(self) -> None:
        """Close the async pool from inside its own loop."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    # -- health -------------------------------------------------------------------------------
    def models(self, timeout_s: float = 5.0) -> list[str]:
        """`GET /v1/models`: the served model ids (raises the mapped errors)."""
        try:
            resp = self.http.get(self.models_url, timeout=timeout_s)
        except httpx.TransportError as e:
            raise self.unavailable(e) from e
        if resp.status_code != 200:
            raise error_for_status(self.who, resp.status_code, resp.text)
        data = resp.json().get("data") or []
        return [str(m.get("id")) for m in data if isinstance(m, dict)]

    # -- chat ---------------------------------------------------------------------------------
    def complete(self, body: Body, *, headers: Mapping[str, str] | None = None,
                 stats: CallStats | None = None) -> Body:
        try:
            resp = self.http.post(self.chat_url, content=orjson.dumps({**body, "stream": False}),
                                  headers={**_JSON, **headers} if headers else _JSON)
        except httpx.TransportError as e:
            raise self.unavailable(e) from e
        if resp.status_code != 200:
            raise error_for_status(self.who, resp.status_code, resp.text)
        out = orjson.loads(resp.content)
        if stats is not None:
            stats.headers = resp.headers
            stats.got(out)
        return out

    async def acomplete(self, body: Body, *, headers: Mapping[str, str] | None = None,
                        stats: CallStats | None = None) -> Body:
        try:
            resp = await self.pool.send(self._chat_head, self._headers(self._post_headers, headers),
                                        orjson.dumps({**body, "stream": False}))
            try:
                raw = await resp.read()
            finally:
                resp.release()
        except OSError as e:  # http1.TransportError and ReadTimeout are OSErrors
            raise self.unavailable(e) from e
        if resp.status != 200:
            raise error_for_status(self.who, resp.status, raw.decode(errors="replace"))
        out = orjson.loads(raw)
        if stats is not None:
            stats.headers = resp.headers
            stats.got(out)
        return out

    @staticmethod
    def _headers(fixed: bytes, extra: Mapping[str, str] | None) -> bytes:
        return fixed + encode_headers(extra) if extra else fixed

    def stream(self, body: Body, *, headers: Mapping[str, str] | None = None,
               stats: CallStats | None = None) -> Iterator[Body]:
        try:
            with self.http.stream("POST", self.chat_url, content=orjson.dumps({**body, "stream": True}),
                                  headers={**_JSON, **headers} if headers else _JSON) as resp:
                if resp.status_code != 200:
                    raise error_for_status(self.who, resp.status_code, resp.read().decode(errors="replace"))
                if stats is not None:
                    stats.headers = resp.headers
                for line in resp.iter_lines():
                    data = _event(line)
                    if data is _DONE:
                        return
                    if data is not None:
                        if stats is not None:
                            stats.saw(data)
                        yield data
        except httpx.TransportError as e:
            raise self.unavailable(e) from e

    async def astream(self, body: Body, *, headers: Mapping[str, str] | None = None,
                      stats: CallStats | None = None) -> AsyncIterator[Body]:
        async for batch in self.astream_batches(body, headers=headers, stats=stats):
            for chunk in batch:
                yield chunk

    async def astream_batches(self, body: Body, *, headers: Mapping[str, str] | None = None,
                              stats: CallStats | None = None) -> AsyncIterator[SseBatch]:
        """The stream as the network delivers it: each `SseBatch` holds the complete events of
        one read, as bytes, with its chunks parsed only when asked for.

        Why batches: a gateway that writes each chunk to its client separately pays one syscall
        and one pass through every generator layer per chunk; forwarding what arrived together
        in one write is what a plain proxy does, and it is what keeps a server that falls behind
        (several chunks per read) from falling further behind.
        """
        # With close_streams, Connection: close: llama-server closes a streamed response's
        # connection while announcing keep-alive, and a pooled client would then hand the dead
        # connection to the next request.
        try:
            resp = await self.pool.send(self._chat_head, self._headers(self._stream_headers, headers),
                                        orjson.dumps(body if body.get("stream") is True else {**body, "stream": True}))
        except OSError as e:  # http1.TransportError and ReadTimeout are OSErrors
            raise self.unavailable(e) from e
        try:
            if resp.status != 200:
                raise error_for_status(self.who, resp.status, (await resp.read()).decode(errors="replace"))
            if stats is not None:
                stats.headers = resp.headers
            rest = b""
            while data := await resp.read_any():
                if rest:
                    data = rest + data
                end = _events_end(data)
                rest = data[end:]  # an incomplete event waits for the next read
                block, done = _split_done(data[:end])
                if (batch := _batch(block, done, stats)) is not None:
                    yield batch
                if done:
                    if not resp.complete:  # the caller has every chunk: this only keeps the connection,
                        # so a server that closes instead of ending the response fails nothing
                        with contextlib.suppress(TimeoutError, OSError):
                            async with asyncio.timeout(_END_WAIT_S):
                                await resp.read()
                    return
            # the stream ended without a final newline
            if rest and (batch := _batch(_split_done(rest + b"\n\n")[0], True, stats)) is not None:
                yield batch
        except OSError as e:  # the connection broke mid-answer (nothing is thrown in at a yield)
            raise self.unavailable(e) from e
        finally:
            resp.release()  # back to the pool when read to its end; closed (request cancelled) if not
