"""The gateway's upstream HTTP client, side by side: aiohttp's ClientSession (what the async path
used before) against `backends.http1.Http1Pool` (what it uses now), in one process, against the
instant engine (a real uvicorn server that answers at once, so the client is what is measured).

For each client, mode (JSON, stream) and number of concurrent callers, it sends requests on
keep-alive connections and reports the client process's CPU time per request and its requests/s;
rounds alternate between the clients and the median round is kept. Ratios are the result: the
machines are shared, so absolute times move from run to run.

    python benchmarks/http_client.py [--requests 4000] [--concurrency 1,8,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
import endpoint_throughput as et  # shares the engine start and the request body

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.backends.http1 import Http1Pool, encode_headers, request_head

Call = Callable[[], Awaitable[None]]
HEADERS = {"content-type": "application/json", "authorization": "Bearer unused"}


def _body(stream: bool) -> bytes:
    body = {"model": "instant", "messages": et.MESSAGES, "max_tokens": 16, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}  # as the gateway asks for it
    return orjson.dumps(body)


async def _aiohttp(url: str, body: bytes, stream: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256),
                                    timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=600.0))

    async def call() -> None:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            if stream:
                async for _ in resp.content.iter_any():
                    pass
            else:
                await resp.read()
        assert resp.status == 200

    return call, session.close


async def _http1(url: str, body: bytes, stream: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    pool = Http1Pool(url)
    head, headers = request_head("POST", url), encode_headers(HEADERS)

    async def call() -> None:
        resp = await pool.send(head, headers, body)
        try:
            if stream:
                while await resp.read_any():
                    pass
            else:
                await resp.read()
        finally:
            resp.release()
        assert resp.status == 200

    return call, pool.aclose


async def _round(make: Callable[..., Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]], url: str,
                 stream: bool, concurrency: int, requests: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s) of one round."""
    call, close = await make(url, _body(stream), stream)

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # connections open, code warm
    per = max(1, requests // concurrency)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    n = per * concurrency
    return cpu / n * 1e6, n / wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=4000, help="requests per round")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = args.modes.split(",")
    clients = {"aiohttp": _aiohttp, "http1": _http1}  # ClientSession; backends.http1.Http1Pool
    try:
        import uvloop
        uvloop.install()  # as `murakkab serve` runs (uvicorn picks uvloop when installed)
    except ImportError:
        pass

    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        engine = et._start([sys.executable, "-m", "murakkab_lg.testing.instant_engine", "--port", str(port)],
                           Path(work) / "engine.log")
        try:
            et._wait_http(f"http://127.0.0.1:{port}/health", engine, "instant engine")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}

            async def run_all() -> None:
                for _ in range(args.rounds):
                    for mode in modes:
                        for c in levels:
                            for name, make in clients.items():
                                got = await _round(make, url, mode == "stream", c, args.requests)
                                results.setdefault((name, mode, c), []).append(got)

            asyncio.run(run_all())
        finally:
            engine.terminate()
            engine.wait(timeout=10)

    table = Table(title="upstream HTTP client: CPU per request and requests/s (median of rounds)")
    for col in ("mode", "callers", *(f"{n} µs/req" for n in clients), "CPU ratio", *(f"{n} req/s" for n in clients)):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode in modes:
        for c in levels:
            cpu = [statistics.median(x[0] for x in results[(n, mode, c)]) for n in clients]
            rps = [statistics.median(x[1] for x in results[(n, mode, c)]) for n in clients]
            table.add_row(mode, str(c), *(f"{v:.1f}" for v in cpu), f"{cpu[1] / cpu[0]:.2f}x",
                          *(f"{v:,.0f}" for v in rps))
    Console().print(table)
    print("CPU ratio: http1 (backends.http1.Http1Pool) CPU per request over aiohttp (ClientSession); below 1: "
          "the pool costs less. "
          "Both share the machine with the engine, whose CPU is not counted.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
