"""What a gateway in front of an engine costs: engine direct vs the thinnest Python forwarding hop vs
`murakkab serve` vs the litellm proxy.

Performance goal P2. One run starts an engine that answers instantly (murakkab_lg.testing.
instant_engine: raw ASGI under uvicorn, so nearly all measured time is the gateway's), then
`murakkab serve` and the litellm proxy in front of that same engine, and drives each with N
concurrent keep-alive clients at N = 1, 8, 32, 64, for JSON and streaming (SSE) requests. It
prints requests/s, p50/p99 latency, the latency each gateway adds over the engine at the same
concurrency, and the gateway's CPU time per request (from /proc, its whole process tree).

The floor: "forwarding hop" is the least a Python gateway can do, a raw ASGI app on uvicorn that
forwards every request to the engine through one pooled aiohttp session and streams the answer
back, with no parsing, routing, auth or telemetry (`--serve-hop`, below). The goal for `murakkab
serve` is >= 75 % of the hop's requests/s and a p99 <= 2x the hop's; the summary prints both ratios.
`murakkab serve` reaches engines through its own keep-alive client (backends/http1.py), which costs
about a third of aiohttp's CPU per request; `--http1-hop` adds a second hop that forwards through
that same client, so the share of the gateway's cost that is routing, not the client, shows too.

The load generator is deliberately cheap (raw asyncio protocol + httptools parser, one process),
but it shares the machine's cores with the engine and the gateway: on a 2-core machine all three
compete, so absolute figures are lower bounds and the ratios are what carries over.

    python benchmarks/endpoint_throughput.py                       # the full matrix (~2 minutes)
    python benchmarks/endpoint_throughput.py --duration 1 --concurrency 1,8 --modes json
    bash benchmarks/setup_litellm_proxy.sh                         # once, for the proxy column

Without the proxy venv (default /tmp/litellm-proxy-venv) the proxy column is skipped, and the
output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httptools
import httpx
import yaml
from rich.console import Console
from rich.table import Table

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.catalog.hardware import describe_machine
from murakkab_lg.catalog.profiles import ProfileFile, write_profile_file
from murakkab_lg.testing.instant_engine import instant_deployments, synthetic_profiles

# Both gateways check this Bearer key (auth on, as deployed); the engine ignores it.
API_KEY = "sk-bench-" + "0123456789abcdef" * 2
HOP = "forwarding hop (floor)"
HOP_HTTP1 = "forwarding hop, http1 pool"
MESSAGES = [{"role": "user", "content": "Classify this ticket: the invoice total is wrong"}]


@dataclass
class Cell:
    target: str
    mode: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float | None
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None


# -- load generator ------------------------------------------------------------------------------
class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request()` sends prebuilt bytes and awaits the full answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.WriteTransport | None = None
        self.done: asyncio.Future[tuple[int, bytes]] | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.tail = (self.tail + body)[-32:]

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((self.parser.get_status_code(), self.tail))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.tail = b""
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.done


def _raw_request(port: int, path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


async def _drive(port: int, raw: bytes, stream: bool, concurrency: int, warmup_s: float,
                 duration_s: float) -> tuple[list[float], int]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        conns.append(proto)
    start = time.perf_counter() + warmup_s
    end = start + duration_s
    latencies: list[float] = []
    errors = 0

    async def client(conn: _Conn) -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            status, tail = await conn.request(raw)
            t1 = time.perf_counter()
            ok = status == 200 and (not stream or tail.endswith(b"[DONE]\n\n"))
            if t0 >= start:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    return latencies, errors


# -- the floor: the thinnest forwarding hop --------------------------------------------------------
def serve_hop(port: int, upstream: str, client: str = "aiohttp") -> None:
    """A raw ASGI app that forwards each request to `upstream` (same path, body and content type)
    through one pooled aiohttp session (or `client="http1"`: one `backends.http1.Http1Pool`), and
    streams the answer back. Nothing else."""
    import uvicorn

    opened = {"aiohttp": _aiohttp_forwarder, "http1": _http1_forwarder}[client]
    forward: Forward | None = None
    close: Callable[[], Awaitable[None]] | None = None

    async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        nonlocal forward, close
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    forward, close = opened(upstream)
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if close is not None:
                        await close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        assert forward is not None
        await forward(scope, body, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False)


Forward = Callable[[dict, bytes, Callable[[dict], Awaitable[None]]], Awaitable[None]]


def _aiohttp_forwarder(upstream: str) -> tuple[Forward, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def forward(scope: dict, body: bytes, send: Callable[[dict], Awaitable[None]]) -> None:
        async with session.request(scope["method"], upstream + scope["path"], data=body or None,
                                   headers={"content-type": "application/json"}) as resp:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", resp.headers.get("content-type", "").encode())]})
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return forward, session.close


def _http1_forwarder(upstream: str) -> tuple[Forward, Callable[[], Awaitable[None]]]:
    from murakkab_lg.backends.http1 import Http1Pool, request_head

    pool = Http1Pool(upstream)
    json_type = b"content-type: application/json\r\n"

    async def forward(scope: dict, body: bytes, send: Callable[[dict], Awaitable[None]]) -> None:
        resp = await pool.send(request_head(scope["method"], upstream + scope["path"]), json_type, body or None)
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [(b"content-type", resp.headers.get("content-type", "").encode())]})
            while chunk := await resp.read_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            resp.release()

    return forward, pool.aclose


# -- processes -----------------------------------------------------------------------------------
def _cpu_s(root: int) -> float:
    """User+system CPU seconds of `root` and its live descendants."""
    tree: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        tree.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += tree.get(pid, [])
    return total


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url} after {timeout_s:.0f} s")


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                stdin=subprocess.DEVNULL)


def _murakkab_config(work: Path, engine_url: str) -> Path:
    deps = instant_deployments(["instant-a", "instant-b"], base_url=engine_url)
    store = synthetic_profiles(deps, {"instant-a": {"classify": 0.7}, "instant-b": {"classify": 0.9}})
    write_profile_file(work / "profiles.json", ProfileFile(produced_by="endpoint_throughput (synthetic)",
                                                           profiles=tuple(store)))
    cfg = {"deployments": [d.model_dump(mode="json") for d in deps], "profiles": ["profiles.json"],
           "engine_factory": "murakkab_lg.testing.instant_engine:engine_factory", "warm": ["instant-a"],
           "max_inflight": 1024, "max_queue": 4096}
    (work / "serve.yaml").write_text(yaml.safe_dump(cfg))
    return work / "serve.yaml"


def _proxy_config(work: Path, engine_url: str) -> Path:
    cfg = {"model_list": [{"model_name": "instant", "litellm_params": {
        "model": "openai/instant", "api_base": engine_url + "/v1", "api_key": "unused"}}]}
    (work / "proxy.yaml").write_text(yaml.safe_dump(cfg))
    return work / "proxy.yaml"


# -- the run -------------------------------------------------------------------------------------
def _pct(xs: list[float], q: float) -> float:
    if len(xs) < 2:
        return xs[0] * 1e3 if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] * 1e3


def measure(target: str, port: int, pid: int, model: str, mode: str, concurrency: int, args: argparse.Namespace,
            ) -> Cell:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 16, "stream": mode == "stream"}
    raw = _raw_request(port, "/v1/chat/completions", body)
    cpu0 = _cpu_s(pid)
    t0 = time.perf_counter()
    lat, errors = asyncio.run(_drive(port, raw, mode == "stream", concurrency, args.warmup, args.duration))
    cpu = _cpu_s(pid) - cpu0
    total = len(lat) + errors
    whole = time.perf_counter() - t0  # CPU covers warm-up too: divide by every request sent
    served = max(1, round(total * whole / args.duration)) if total else 1
    return Cell(target=target, mode=mode, concurrency=concurrency, requests=len(lat), errors=errors,
                rps=len(lat) / args.duration, p50_ms=_pct(lat, 50), p99_ms=_pct(lat, 99),
                cpu_ms_per_req=cpu / served * 1e3 if total else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per cell")
    p.add_argument("--proxy-venv", default="/tmp/litellm-proxy-venv")
    p.add_argument("--proxy-workers", type=int, default=1)
    p.add_argument("--no-proxy", action="store_true")
    p.add_argument("--out", type=Path, help="also write the cells as JSON here")
    p.add_argument("--http1-hop", action="store_true",
                   help="also measure a hop that forwards through backends.http1.Http1Pool, serve's own client")
    p.add_argument("--serve-hop", nargs=3, metavar=("PORT", "UPSTREAM", "CLIENT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_hop:
        serve_hop(int(args.serve_hop[0]), args.serve_hop[1], args.serve_hop[2])
        return 0
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    console = Console(width=150)
    levels = [int(x) for x in args.concurrency.split(",")]
    modes = args.modes.split(",")
    work = Path(tempfile.mkdtemp(prefix="murakkab-bench-"))
    procs: list[subprocess.Popen] = []
    notes = []
    try:
        ep = free_port()
        engine_url = f"http://127.0.0.1:{ep}"
        engine = _start([sys.executable, "-m", "murakkab_lg.testing.instant_engine", "--port", str(ep)],
                        work / "engine.log")
        procs.append(engine)
        _wait_http(engine_url + "/health", engine, "instant engine")
        targets = [("engine", ep, engine.pid, "instant")]

        for name, client in ((HOP, "aiohttp"), (HOP_HTTP1, "http1"))[:2 if args.http1_hop else 1]:
            hp = free_port()
            hop = _start([sys.executable, __file__, "--serve-hop", str(hp), engine_url, client],
                         work / f"hop-{client}.log")
            procs.append(hop)
            _wait_http(f"http://127.0.0.1:{hp}/health", hop, name)
            targets.append((name, hp, hop.pid, "instant"))

        mp = free_port()
        mk = _start([sys.executable, "-m", "murakkab_lg.cli", "serve", "--config",
                     str(_murakkab_config(work, engine_url)), "--port", str(mp), "--log-level", "warning"],
                    work / "murakkab.log", env={"MURAKKAB_API_KEYS": API_KEY})
        procs.append(mk)
        _wait_http(f"http://127.0.0.1:{mp}/health", mk, "murakkab serve")
        targets.append(("murakkab serve", mp, mk.pid, "murakkab/classify"))

        litellm_bin = Path(args.proxy_venv) / "bin" / "litellm"
        if args.no_proxy:
            notes.append("litellm proxy: skipped (--no-proxy)")
        elif not litellm_bin.exists():
            notes.append(f"litellm proxy: skipped ({litellm_bin} missing; run benchmarks/setup_litellm_proxy.sh)")
        else:
            lp = free_port()
            proxy = _start([str(litellm_bin), "--config", str(_proxy_config(work, engine_url)), "--port", str(lp),
                            "--host", "127.0.0.1", "--num_workers", str(args.proxy_workers)], work / "proxy.log",
                           env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                                "LITELLM_MASTER_KEY": API_KEY, "DISABLE_ADMIN_UI": "True"})
            procs.append(proxy)
            _wait_http(f"http://127.0.0.1:{lp}/health/liveliness", proxy, "litellm proxy", timeout_s=180)
            targets.append((f"litellm proxy ({args.proxy_workers} worker)", lp, proxy.pid, "instant"))
            notes.append(f"litellm proxy: {litellm_bin} ({_version(litellm_bin)})")

        cells: list[Cell] = []
        for mode in modes:
            for c in levels:
                base = None
                for name, port, pid, model in targets:
                    cell = measure(name, port, pid, model, mode, c, args)
                    if base is None:
                        base = cell
                    else:
                        cell.added_p50_ms = cell.p50_ms - base.p50_ms
                        cell.added_p99_ms = cell.p99_ms - base.p99_ms
                    cells.append(cell)
                    console.print(f"  {mode:6} c={c:<3} {name:28} {cell.rps:8.0f} req/s  p50 {cell.p50_ms:7.2f} ms",
                                  highlight=False)
        report(console, cells, notes, args)
        if args.out:
            args.out.write_text(json.dumps([asdict(c) for c in cells], indent=1))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def _version(litellm_bin: Path) -> str:
    py = litellm_bin.parent / "python"
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, check=False)
    return "litellm " + out.stdout.strip()


def report(console: Console, cells: list[Cell], notes: list[str], args: argparse.Namespace) -> None:
    table = Table(title=f"Gateway overhead in front of an instant engine ({args.duration:g} s per cell)")
    for col in ("mode", "clients", "target", "req/s", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms",
                "gateway CPU ms/req", "errors"):
        table.add_column(col, justify="right" if col not in ("mode", "target") else "left")

    def f(x: float | None, nd: int = 2) -> str:
        return "-" if x is None else f"{x:.{nd}f}"

    for c in cells:
        table.add_row(c.mode, str(c.concurrency), c.target, f"{c.rps:,.0f}", f(c.p50_ms), f(c.p99_ms),
                      f(c.added_p50_ms), f(c.added_p99_ms), f(c.cpu_ms_per_req) if c.target != "engine" else "-",
                      str(c.errors))
    console.print(table)
    console.print(f"machine: {describe_machine()}; Python {platform.python_version()}. The load generator, "
                  "the engine and the gateway share these cores.", highlight=False)
    for n in notes:
        console.print(n, highlight=False)
    mk = [c for c in cells if c.target == "murakkab serve"]
    px = {(c.mode, c.concurrency): c for c in cells if c.target.startswith("litellm")}
    hop = {(c.mode, c.concurrency): c for c in cells if c.target == HOP}
    hop1 = {(c.mode, c.concurrency): c for c in cells if c.target == HOP_HTTP1}
    for c in mk:
        other = px.get((c.mode, c.concurrency))
        ratio = f", {c.rps / other.rps:.0f}x the litellm proxy" if other and other.rps else ""
        floor = hop.get((c.mode, c.concurrency))
        vs_hop = (f"; {100 * c.rps / floor.rps:.0f} % of the hop's req/s (goal >= 75 %), p99 "
                  f"{c.p99_ms / floor.p99_ms:.2f}x the hop's (goal <= 2x)") if floor and floor.rps else ""
        same = hop1.get((c.mode, c.concurrency))
        vs_hop1 = (f"; {100 * c.rps / same.rps:.0f} % of the http1 hop's, p99 {c.p99_ms / same.p99_ms:.2f}x"
                   if same and same.rps else "")
        console.print(f"murakkab serve {c.mode} c={c.concurrency}: {c.rps:,.0f} req/s, adds {c.added_p50_ms:.2f} ms "
                      f"p50{ratio}{vs_hop}{vs_hop1}", highlight=False)


if __name__ == "__main__":
    raise SystemExit(main())
