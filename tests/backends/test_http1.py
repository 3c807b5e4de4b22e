"""`http1.Http1Pool` against real sockets: a scripted asyncio server writes exact HTTP/1.1 bytes
(sized, chunked, ended by close, split anywhere, broken, silent), so every way a response can
arrive or fail is checked as it would come off the network, and so is what the pool does with
the connection afterwards (reused, closed, opened again)."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from murakkab_lg.backends.http1 import Http1Pool, ReadTimeout, TransportError, encode_headers, request_head
from murakkab_lg.backends.openai_http import OpenAIClient


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test on both loops: `murakkab serve` runs on uvloop, library callers on asyncio's own."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield request.param
    asyncio.set_event_loop_policy(None)


Reply = Callable[[asyncio.StreamWriter, int], Awaitable[None]]  # (writer, request number) -> writes


class Scripted:
    """Answers each request with `reply`; counts connections and requests."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.tls = tls
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.closed_by_client = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                await self.reply(writer, self.requests)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client.set()
        finally:
            writer.close()


def _sized(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def _post(pool: Http1Pool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    resp = await pool.send(request_head("POST", url + "/v1/chat/completions"),
                           encode_headers({"content-type": "application/json"}), body)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


def test_a_sized_answer_is_read_whole_and_its_connection_is_reused() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(b'{"n": %d}' % n, b"x-murakkab-deployment: small\r\n"))

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url)
            assert await _post(pool, url, b'{"q": 1}') == (200, b'{"n": 1}')
            assert await _post(pool, url) == (200, b'{"n": 2}')
            pool.close()
        assert srv.connections == 1 and srv.requests == 2
        assert srv.bodies[0] == b'{"q": 1}'
        assert b"accept-encoding: identity" in srv.heads[0]  # no content coding to decode

    asyncio.run(main())


def test_response_headers_are_case_insensitive() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(b"{}", b"X-Murakkab-Deployment: small\r\n"))

    async def main() -> None:
        async with Scripted(reply) as url:
            pool = Http1Pool(url)
            resp = await pool.send(request_head("GET", url + "/v1/models"), b"")
            await resp.read()
            resp.release()
            assert resp.headers["x-murakkab-deployment"] == "small"
            assert resp.headers.get("X-MURAKKAB-DEPLOYMENT") == "small"
            pool.close()

    asyncio.run(main())


def test_a_chunked_answer_split_anywhere_arrives_whole_and_in_order() -> None:
    events = [b"data: {\"i\": %d}\n\n" % i for i in range(20)]
    wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"

    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        for i in range(0, len(wire), 7):  # cut through sizes, CRLFs and events alike
            w.write(wire[i:i + 7])
            await w.drain()
            await asyncio.sleep(0)

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url)
            resp = await pool.send(request_head("POST", url + "/v1/chat/completions"), b"", b"{}")
            got = []
            while data := await resp.read_any():
                got.append(data)
            resp.release()
            assert b"".join(got) == b"".join(events)
            assert await _post(pool, url) == (200, b"".join(events))  # on the same connection
            pool.close()
        assert srv.connections == 1

    asyncio.run(main())


def test_an_answer_without_length_ends_when_the_server_closes() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await w.drain()
        w.close()

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url)
            assert await _post(pool, url) == (200, b"all of it")
            assert await _post(pool, url) == (200, b"all of it")  # a new connection, not the closed one
            pool.close()
        assert srv.connections == 2

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(b"ok"))  # announces keep-alive ...
        await w.drain()
        w.close()  # ... and closes anyway (llama-server does this after streams)

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url)
            for _ in range(3):
                assert await _post(pool, url) == (200, b"ok")
                await asyncio.sleep(0.05)
            pool.close()
        assert srv.requests == 3 and srv.connections == 3

    asyncio.run(main())


@pytest.mark.parametrize(("wire", "match"), [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", "closed the connection before the response"),
    (b"SMTP ready\r\n\r\n", "malformed HTTP response"),
    (_sized(b"\x1f\x8b\x08\x00", b"content-encoding: gzip\r\n"), "gzip-encoded answer, which this client"),
], ids=["cut-short", "not-http", "compressed"])
def test_a_broken_answer_is_a_transport_error_not_a_short_answer(wire: bytes, match: str) -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(wire)
        await w.drain()
        w.close()

    async def main() -> None:
        async with Scripted(reply) as url:
            pool = Http1Pool(url)
            with pytest.raises(TransportError, match=match):
                await _post(pool, url)
            pool.close()

    asyncio.run(main())


def test_nobody_listening_is_a_transport_error_naming_the_origin() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = Http1Pool(f"http://127.0.0.1:{port}")
        with pytest.raises(TransportError, match=f"cannot connect to http://127.0.0.1:{port}"):
            await _post(pool, f"http://127.0.0.1:{port}")
        pool.close()

    asyncio.run(main())


def test_a_server_that_goes_silent_times_out_between_reads() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await w.drain()
        await asyncio.sleep(30)

    async def main() -> None:
        async with Scripted(reply) as url:
            pool = Http1Pool(url, read_timeout_s=0.2)
            resp = await pool.send(request_head("POST", url + "/x"), b"", b"{}")
            assert await resp.read_any() == b"first"
            t0 = time.monotonic()
            with pytest.raises(ReadTimeout, match=r"sent nothing for 0\.2 s"):
                await resp.read_any()
            assert time.monotonic() - t0 < 2.0
            resp.release()
            pool.close()

    asyncio.run(main())


def test_a_response_cut_short_by_its_reader_closes_the_connection() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        try:
            for _ in range(500):  # an engine generating: it learns of a gone client when writing
                await w.drain()
                await asyncio.sleep(0.01)
                if w.is_closing():  # uvloop refuses a write on a closed transport (RuntimeError)
                    break
                w.write(b"1\r\nx\r\n")
            else:
                return  # 5 s and the client still reads: the event stays unset and the test fails
        except ConnectionError:
            pass
        srv.closed_by_client.set()

    async def main() -> None:
        async with srv as url:
            pool = Http1Pool(url)
            resp = await pool.send(request_head("POST", url + "/x"), b"", b"{}")
            reader = asyncio.ensure_future(resp.read())
            await asyncio.sleep(0.05)
            reader.cancel()  # the caller gave up (a client went away)
            with pytest.raises(asyncio.CancelledError):
                await reader
            resp.release()
            await asyncio.wait_for(srv.closed_by_client.wait(), 5)  # the engine sees its request end
            assert not pool._idle
            pool.close()

    srv = Scripted(reply)
    asyncio.run(main())


def test_callers_past_the_limit_wait_for_a_connection() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(0.02)
        w.write(_sized(b"%d" % n))

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url, limit=2)
            got = await asyncio.gather(*(_post(pool, url) for _ in range(6)))
            pool.close()
        assert sorted(b for _, b in got) == [b"%d" % i for i in range(1, 7)]
        assert srv.connections == 2

    asyncio.run(main())


def test_a_large_answer_read_slowly_arrives_intact() -> None:
    body = bytes(range(256)) * 16384  # 4 MiB, past the pool's read-ahead limit

    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(body))
        await w.drain()

    async def main() -> None:
        async with Scripted(reply) as url:
            pool = Http1Pool(url)
            resp = await pool.send(request_head("GET", url + "/big"), b"")
            got = []
            while data := await resp.read_any():
                got.append(data)
                await asyncio.sleep(0.001)
            resp.release()
            pool.close()
        assert b"".join(got) == body

    asyncio.run(main())


def test_a_header_value_cannot_smuggle_a_header_of_its_own() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_headers({"x-murakkab-node": "a\r\nauthorization: Bearer stolen"})


def test_a_closed_pool_refuses_new_requests() -> None:
    async def main() -> None:
        pool = Http1Pool("http://127.0.0.1:9")
        pool.close()
        with pytest.raises(TransportError, match="is closed"):
            await _post(pool, "http://127.0.0.1:9")

    asyncio.run(main())


def test_https_answers_over_tls_and_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    """A hosted OpenAI-compatible API is reached over TLS: a self-signed certificate made here
    (openssl) serves the request when the client trusts it, and is refused when it does not."""
    openssl = shutil.which("openssl")
    assert openssl, "this test makes its certificate with the openssl command"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(b'{"over": "tls"}'))

    async def main() -> None:
        async with Scripted(reply, tls=server_tls) as url:
            assert url.startswith("https://")
            pool = Http1Pool(url, ssl_context=ssl.create_default_context(cafile=str(cert)))
            assert await _post(pool, url) == (200, b'{"over": "tls"}')
            assert await _post(pool, url) == (200, b'{"over": "tls"}')
            pool.close()
            untrusting = Http1Pool(url)  # the system's CAs: a self-signed certificate is not among them
            with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                await _post(untrusting, url)
            untrusting.close()

    asyncio.run(main())


def test_a_request_that_timed_out_is_not_sent_again() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            w.write(_sized(b"first"))
        else:
            await asyncio.sleep(30)  # has the request, and is slow

    async def main() -> None:
        srv = Scripted(reply)
        async with srv as url:
            pool = Http1Pool(url, read_timeout_s=0.2)
            assert await _post(pool, url) == (200, b"first")
            with pytest.raises(ReadTimeout):
                await _post(pool, url)  # on the reused connection, no byte back
            pool.close()
        assert srv.requests == 2  # not three

    asyncio.run(main())


def test_a_waiter_cancelled_after_its_turn_came_hands_the_turn_on() -> None:
    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(_sized(b"ok"))

    async def main() -> None:
        async with Scripted(reply) as url:
            pool = Http1Pool(url, limit=1)
            held = await pool._acquire()
            first = asyncio.ensure_future(_post(pool, url))
            second = asyncio.ensure_future(_post(pool, url))
            await asyncio.sleep(0.05)  # both wait for the one connection
            held.release()  # the first waiter's turn ...
            first.cancel()  # ... but it is cancelled before it runs
            assert await asyncio.wait_for(second, 5) == (200, b"ok")
            with pytest.raises(asyncio.CancelledError):
                await first
            pool.close()

    asyncio.run(main())


_HI = {"choices": [{"delta": {"content": "hi"}}]}


def _done_then(close: bool) -> Reply:
    """A stream's one chunk and `data: [DONE]`, then 20 ms later the chunked end (as uvicorn's
    StreamingResponse writes it, separately) or, with `close`, the connection closed instead."""
    events = [b"data: " + json.dumps(_HI).encode() + b"\n\n", b"data: [DONE]\n\n"]

    async def reply(w: asyncio.StreamWriter, n: int) -> None:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for e in events:
            w.write(b"%x\r\n%s\r\n" % (len(e), e))
        await w.drain()
        await asyncio.sleep(0.02)
        if close:
            w.close()
        else:
            w.write(b"0\r\n\r\n")

    return reply


def test_a_stream_whose_end_comes_after_done_keeps_its_connection() -> None:
    """uvicorn's StreamingResponse (vLLM, the instant engine) writes the chunked response's end
    separately from its last event: the client waits for it, so the next call reuses the connection."""
    async def main() -> None:
        srv = Scripted(_done_then(close=False))
        async with srv as url:
            client = OpenAIClient(url, who="engine 'e'")
            for _ in range(3):
                got = [c async for c in client.astream({"model": "m", "messages": []})]
                assert got == [_HI]
            await client.aclose()
        assert srv.connections == 1 and srv.requests == 3

    asyncio.run(main())


def test_a_stream_cut_after_done_is_still_a_whole_answer() -> None:
    """The answer is complete at `data: [DONE]`: a server that then closes without ending the
    chunked response costs the connection, not the call."""
    async def main() -> None:
        async with Scripted(_done_then(close=True)) as url:
            client = OpenAIClient(url, who="engine 'e'")
            got = [c async for c in client.astream({"model": "m", "messages": []})]
            assert got == [_HI]
            await client.aclose()

    asyncio.run(main())
