"""P1: what wrap() adds per LLM call, next to the user's own ChatOpenAI and the litellm SDK.

All paths call the same engine: `murakkab_lg.testing.instant_engine` in its own process, which
answers in microseconds, so what is measured is client-side overhead, not generation:

  openai SDK            client.chat.completions.create (the floor every other path builds on)
  ChatOpenAI            the user's own model, llm.invoke / llm.stream, outside any graph
  litellm SDK           litellm.completion(model="openai/...", api_base=engine)
  httpx POST            one raw POST with the runtime's own HTTP client settings (its transport floor)
  Runtime.complete      the runtime serving a routed body directly, no LangChain, no graph
  graph, unwrapped      a one-node LangGraph graph whose node calls ChatOpenAI: the user's app today
  graph, wrap()         the same graph wrapped: the call is intercepted and served by a Runtime
                        whose deployment is the same engine

"wrap adds" is (graph, wrap()) minus (graph, unwrapped): the per-call cost of interception,
routing, runtime telemetry and our own HTTP client, against the user's own ChatOpenAI path.
Rounds interleave the paths so machine noise hits them alike.

Run: .venv/bin/python benchmarks/interception_overhead.py [--calls 300] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import

import httpx
from rich.console import Console
from rich.table import Table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_engine() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "murakkab_lg.testing.instant_engine", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("instant engine did not start")


class State(TypedDict):
    out: Annotated[list[str], lambda a, b: a + b]


def build_paths(base: str, stream: bool) -> tuple[dict[str, Callable[[], Any]], Any]:
    import litellm
    import openai
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, StateGraph

    from murakkab_lg import Runtime, wrap
    from murakkab_lg.backends.engines.base import HttpEngine
    from murakkab_lg.catalog.profiles import ProfileStore
    from murakkab_lg.spec import ApiSettings, Deployment
    from murakkab_lg.testing.scripted_engine import synthetic_profile

    class InstantEngine(HttpEngine):
        def start(self, timeout_s: float = 120.0) -> None:
            self.base_url = base

        def stop(self) -> None:
            self._close_clients()

        def healthy(self) -> bool:
            return True

    msgs = [{"role": "user", "content": "ping"}]
    client = openai.OpenAI(api_key="sk-bench", base_url=base + "/v1")
    llm = ChatOpenAI(model="instant", api_key="sk-bench", base_url=base + "/v1", max_tokens=8, temperature=0)
    runtime = Runtime([Deployment(name="instant", model="instant", engine=ApiSettings(litellm_model="openai/instant",
                                                                                      api_base=base + "/v1"))],
                      ProfileStore([synthetic_profile("instant", quality={"answer": 0.9})], source="synthetic"),
                      engine_factory=lambda d, _i: InstantEngine(d.name))

    def node(state: State) -> dict:
        if stream:
            return {"out": ["".join(str(c.content) for c in llm.stream("ping"))]}
        return {"out": [llm.invoke("ping").content]}

    g = StateGraph(State)
    g.add_node("answer", node, metadata={"murakkab": {"intent": "answer"}})
    g.add_edge(START, "answer")
    graph = g.compile()
    app = wrap(graph, runtime=runtime)

    def raw() -> Any:
        if stream:
            return [c for c in client.chat.completions.create(model="instant", messages=msgs, max_tokens=8,
                                                              stream=True)]
        return client.chat.completions.create(model="instant", messages=msgs, max_tokens=8)

    def lite() -> Any:
        if stream:
            return [c for c in litellm.completion(model="openai/instant", api_base=base + "/v1", api_key="sk-bench",
                                                  messages=msgs, max_tokens=8, stream=True)]
        return litellm.completion(model="openai/instant", api_base=base + "/v1", api_key="sk-bench", messages=msgs,
                                  max_tokens=8)

    def chat() -> Any:
        return "".join(str(c.content) for c in llm.stream("ping")) if stream else llm.invoke("ping")

    from murakkab_lg.runtime import Route
    from murakkab_lg.spec import Intent

    route = Route(workflow="bench", node="answer", intent=Intent("answer"))
    body = {"model": "murakkab/answer", "messages": msgs, "max_tokens": 8}
    hclient = httpx.Client(base_url=base)

    def post() -> Any:
        if stream:
            with hclient.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
                return list(r.iter_lines())
        return hclient.post("/v1/chat/completions", json=body).json()

    def direct() -> Any:
        return list(runtime.stream(body, route)) if stream else runtime.complete(body, route)

    paths = {
        "openai SDK": raw,
        "ChatOpenAI": chat,
        "litellm SDK": lite,
        "httpx POST": post,
        "Runtime.complete" if not stream else "Runtime.stream": direct,
        "graph, unwrapped": lambda: graph.invoke({"out": []}),
        "graph, wrap()": lambda: app.invoke({"out": []}),
    }
    return paths, (app, runtime)


def measure(paths: dict[str, Callable[[], Any]], calls: int, rounds: int) -> dict[str, list[float]]:
    for fn in paths.values():  # warm connections, imports, caches
        for _ in range(20):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in paths}
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, fn in paths.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return samples


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if len(xs) > 1 else xs[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300, help="calls per path and mode")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    console = Console()
    proc, base = start_engine()
    results: dict[str, Any] = {"calls": args.calls, "rounds": args.rounds, "cpus": os.cpu_count(), "modes": {}}
    try:
        for mode in ("invoke", "stream"):
            paths, (app, runtime) = build_paths(base, stream=mode == "stream")
            samples = measure(paths, args.calls, args.rounds)
            routed = app.last_report().records
            if not routed or routed[-1].deployment != "instant":
                raise RuntimeError("the wrapped path was not served by the runtime; the figures would be wrong")
            stats = {k: {"p50_ms": pct(v, 50) * 1e3, "p99_ms": pct(v, 99) * 1e3, "n": len(v)}
                     for k, v in samples.items()}
            results["modes"][mode] = stats
            runtime.close()
            floor, own, graph = stats["openai SDK"], stats["ChatOpenAI"], stats["graph, unwrapped"]
            t = Table(title=f"per-call latency, {mode}, instant local engine, {os.cpu_count()} CPUs "
                            f"({args.calls} calls per path, {args.rounds} interleaved rounds)")
            for col in ("path", "p50 ms", "p99 ms", "+p50 vs openai SDK", "+p50 vs user's ChatOpenAI path"):
                t.add_column(col, justify="left" if col == "path" else "right")
            for name, s in stats.items():
                ref = graph if name.startswith("graph") else own
                vs_own = f"{s['p50_ms'] - ref['p50_ms']:+.3f} ms" if name in ("litellm SDK", "graph, wrap()") else "-"
                t.add_row(name, f"{s['p50_ms']:.3f}", f"{s['p99_ms']:.3f}", f"{s['p50_ms'] - floor['p50_ms']:+.3f}",
                          vs_own)
            console.print(t)
            added = stats["graph, wrap()"]["p50_ms"] - graph["p50_ms"]
            added99 = stats["graph, wrap()"]["p99_ms"] - graph["p99_ms"]
            verdict = "meets" if added <= 0.5 else "misses"
            console.print(f"wrap() adds {added:+.3f} ms p50 ({added99:+.3f} ms p99) per call over the user's own "
                          f"ChatOpenAI path ({mode}); target <= 0.5 ms p50: {verdict}\n")
            results["modes"][mode]["wrap_added_p50_ms"] = added
            results["modes"][mode]["wrap_added_p99_ms"] = added99
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
