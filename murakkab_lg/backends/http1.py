"""A pooled HTTP/1.1 client for the async path: requests written as bytes, responses parsed by
httptools (llhttp, the C parser uvicorn uses), one keep-alive pool per client and event loop.

Why not aiohttp's ClientSession, which this replaced: a gateway forwards every call through it,
and on a 2-core machine it cost about 60 µs of CPU per streamed request before a byte of ours
ran (request and header objects, payload registry, cookie jar, tracing hooks, a timer per read),
about half of what the whole server spent on a request (benchmarks/http_client.py measures both
side by side). An OpenAI-compatible API needs little of it, so this does only that:

- `POST`/`GET` with a bytes body and fixed headers, keep-alive connections reused LIFO, at most
  `limit` in use or opening at once (more callers wait for one);
- responses sized by Content-Length, chunked, or (without either) ended by the server closing;
- TLS for `https://` URLs (the system's CAs, or a given `ssl_context`), a connect timeout, and a read timeout
  between two reads of one response (checked by one timer per pool, not one per read);
- a request on a reused connection that the server had closed while it sat idle (not a byte of
  its answer came back, and it did not time out) is sent again on the next connection.

Not supported, and not needed by the servers it talks to: redirects, cookies, proxies and
compressed answers (requests ask for `accept-encoding: identity`; an answer encoded anyway is a
clear error, never bytes handed on undecoded).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import weakref
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ("Exchange", "Http1Pool", "ReadTimeout", "TransportError", "aclose_pools", "encode_headers", "request_head")

_HIGH_WATER = 1 << 20  # stop reading from the socket while this much body waits for its reader
_pools: weakref.WeakSet[Http1Pool] = weakref.WeakSet()


class TransportError(ConnectionError):
    """The connection could not be made, broke, or carried something that is not HTTP/1.1."""


class ReadTimeout(TransportError, TimeoutError):
    """The server sent nothing for longer than the read timeout."""


def request_head(method: str, url: str) -> bytes:
    """The request line and Host header for `url`, built once per URL."""
    u = urlsplit(url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    # identity: no content coding is decoded here, and without the header a server may pick one
    return f"{method} {target} HTTP/1.1\r\nhost: {u.netloc}\r\naccept-encoding: identity\r\n".encode("latin-1")


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines as they go on the wire (each ending in CRLF); names and values may not hold
    a line break, which would let a value smuggle a header of its own."""
    out = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n"):
            raise ValueError(f"header {name!r} holds a line break")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


class Exchange(asyncio.Protocol):
    """One keep-alive connection and the response being read on it.

    The connection is the protocol object: data arrives in `data_received`, goes through the
    parser, and its body pieces wait in `_body` until `read_any` takes all of them at once (a
    reader that falls behind gets the pieces of several network reads in one call).
    """

    __slots__ = ("_body", "_buffered", "_ended_by_close", "_headers", "_paused", "_pool", "_raw_headers",
                 "_waiter", "complete", "error", "got_bytes", "in_use", "keep_alive", "last_read", "parser",
                 "reused", "status", "transport")

    def __init__(self, pool: Http1Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self.reused = False
        self.in_use = True  # made for a request; False while it waits in the pool
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDictProxy[str] | None = None
        self._ended_by_close = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.last_read = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        if not self.in_use:  # nothing was asked on this idle connection: it cannot be trusted again
            self._fail(TransportError(f"{self._pool.origin} sent bytes nobody asked for"))
            return
        self.got_bytes = True
        self.last_read = self._pool.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(TransportError(f"{self._pool.origin} switched protocols, which this client does not speak"))
        except httptools.HttpParserError as e:
            self._fail(TransportError(f"{self._pool.origin} sent a malformed HTTP response ({e})"))
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too: the connection is over

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and self.error is None:
            if self.status and self._ended_by_close:
                self.complete = True  # a response with neither length nor chunks ends here
            else:
                why = f": {exc}" if exc else ""
                self.error = TransportError(f"{self._pool.origin} closed the connection before the "
                                            f"response was complete{why}")
        self.transport = None
        self._wake()

    # -- parser callbacks ---------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # read here: llhttp resets it at the message's end
        sized = False
        for name, value in self._raw_headers:
            name = name.lower()
            if name in (b"content-length", b"transfer-encoding"):
                sized = True
            elif name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                self._fail(TransportError(f"{self._pool.origin} sent a {value.decode('latin-1')}-encoded answer, "
                                          "which this client does not decode (it asks for identity)"))
        self._ended_by_close = not sized

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return  # nothing of a failed answer is handed on
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.error is None:
            self.complete = True

    # -- for the caller -----------------------------------------------------------------------
    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The response headers, names case-insensitive (built on first use)."""
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(
                (n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw_headers))
        return self._headers

    def _wake(self) -> None:
        """Let the reader waiting in `_wait` look again (new bytes, the end, or an error)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = waiter = self._pool.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def read_any(self) -> bytes:
        """All the body that has arrived since the last call, waiting for some; b"" at the end."""
        while not self._body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait()
        body = self._body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            if self.error is not None:
                raise self.error
            await self._wait()
        data = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        return data

    def release(self) -> None:
        """Back to the pool when its response was read to the end and the server keeps it open;
        closed otherwise (a response cut short leaves bytes on the wire no next request may read).
        Safe to call more than once."""
        self._pool._release(self)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.close()

    def _send(self, request: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.last_read = self._pool.loop.time()
        self.transport.write(request)

    async def _response_head(self) -> None:
        while not self.status:
            if self.error is not None:
                raise self.error
            await self._wait()


class Http1Pool:
    """Keep-alive connections to one origin (`scheme://host:port`), bound to one event loop."""

    def __init__(self, base_url: str, *, limit: int = 256, connect_timeout_s: float = 5.0,
                 read_timeout_s: float | None = 600.0, ssl_context: ssl.SSLContext | None = None) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        # https: the system's trusted CAs unless a context is given (a private CA, a test's own)
        self.ssl = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        self.origin = f"{url.scheme}://{url.netloc}"
        self.limit = limit
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._idle: list[Exchange] = []
        self._busy: set[Exchange] = set()
        self._opening = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        _pools.add(self)

    async def send(self, head: bytes, headers: bytes, body: bytes | None = None) -> Exchange:
        """Send one request (`head` from `request_head` for a URL of this pool's origin, `headers`
        from `encode_headers`) and return once its status line and headers have arrived; the
        caller reads the body and releases the exchange."""
        if body is None:
            request = head + headers + b"\r\n"
        else:
            request = b"%s%scontent-length: %d\r\n\r\n%s" % (head, headers, len(body), body)
        while True:
            conn = await self._acquire()
            conn._send(request)
            try:
                await conn._response_head()
                return conn
            except BaseException as e:
                conn.release()
                # Sent again, on a fresh connection, only when the server had closed this one while
                # it sat idle: nothing came back. Never after a timeout (the server has it, slowly).
                if not (isinstance(e, TransportError) and not isinstance(e, ReadTimeout)
                        and conn.reused and not conn.got_bytes):
                    raise

    # -- connections --------------------------------------------------------------------------
    async def _acquire(self) -> Exchange:
        if self.closed:
            raise TransportError(f"the connection pool for {self.origin} is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                conn.reused = conn.in_use = True
                self._busy.add(conn)
                self._watch()
                return conn
        while len(self._busy) + self._opening >= self.limit:
            waiter = self.loop.create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled before it ran: the turn goes to the next
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            if idle:
                return await self._acquire()
        self._opening += 1
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await self.loop.create_connection(
                    lambda: Exchange(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except TimeoutError:
            raise TransportError(f"connecting to {self.origin} took over {self.connect_timeout_s:g} s") from None
        except OSError as e:
            raise TransportError(f"cannot connect to {self.origin} ({e})") from e
        finally:
            self._opening -= 1
        self._busy.add(conn)
        self._watch()
        return conn

    def _release(self, conn: Exchange) -> None:
        if conn not in self._busy:
            return
        self._busy.discard(conn)
        t = conn.transport
        if t is not None:
            if conn.complete and not conn._body and conn.error is None and conn.keep_alive \
                    and not self.closed and not t.is_closing():
                conn.reused = conn.in_use = False
                self._idle.append(conn)
            else:
                t.close()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _watch(self) -> None:
        if self._sweeper is None and self.read_timeout_s is not None:
            self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    def _sweep_every(self) -> float:
        assert self.read_timeout_s is not None
        return min(1.0, max(self.read_timeout_s / 4, 0.01))

    def _sweep(self) -> None:
        """Fail the responses that have waited longer than the read timeout for their next bytes."""
        assert self.read_timeout_s is not None
        now = self.loop.time()
        for conn in list(self._busy):
            if conn.last_read and now - conn.last_read > self.read_timeout_s and not conn.complete:
                conn._fail(ReadTimeout(f"{self.origin} sent nothing for {self.read_timeout_s:g} s"))
                conn._wake()
        self._sweeper = None
        if (self._busy or self._opening) and not self.closed:
            self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection now (safe from a loop that has ended, and more than once)."""
        self.closed = True
        if self._sweeper is not None:
            with contextlib.suppress(Exception):
                self._sweeper.cancel()
            self._sweeper = None
        for conn in [*self._idle, *self._busy]:
            if conn.transport is not None:
                with contextlib.suppress(Exception):  # the loop may be gone: best effort
                    conn.transport.abort()
        self._idle.clear()
        self._busy.clear()
        for waiter in self._waiting:
            with contextlib.suppress(Exception):
                if not waiter.done():
                    waiter.set_exception(TransportError(f"the connection pool for {self.origin} is closed"))


async def aclose_pools() -> None:
    """Close every pool bound to the running loop (before the loop ends, e.g. in a server's
    shutdown), so no connection outlives it."""
    loop = asyncio.get_running_loop()
    for pool in list(_pools):
        if pool.loop is loop and not pool.closed:
            await pool.aclose()
