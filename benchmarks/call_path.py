"""Which murakkab modules one intercepted call crosses: wrap -> intercept -> runtime -> engine client.

Runs a one-node LangGraph graph wrapped on an in-process Runtime whose deployment is an `openai`
engine (an existing server: the scripted test server), warms it up, then traces one
`llm.invoke(...)` inside the node with `sys.setprofile` and prints the murakkab_lg modules whose
functions ran, in first-call order. Planning and engine start happen in the warm-up, so the count
is the steady-state path of a call.

    python benchmarks/call_path.py [--stream] [--async]

`--async` traces `await llm.ainvoke(...)` (or `astream`) in an async node instead: the same path,
with the async connection pool (`backends.http1`) where the sync path uses httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from murakkab_lg import Runtime, wrap
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.testing.scripted_engine import ScriptedServer, scripted_runtime, synthetic_profile


class State(TypedDict, total=False):
    out: str


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stream", action="store_true", help="trace llm.stream() instead of llm.invoke()")
    p.add_argument("--async", dest="use_async", action="store_true",
                   help="trace await llm.ainvoke() (or astream) in an async node")
    p.add_argument("--scripted-engine", action="store_true",
                   help="serve through testing.ScriptedEngine instead of an `openai` deployment")
    args = p.parse_args(argv)
    llm = ChatOpenAI(model="gpt-4o-mini", api_key="unused", base_url="http://127.0.0.1:9/v1", max_tokens=8)
    traced: list[str] = []
    tracing = False

    def node(state: State) -> State:
        nonlocal tracing
        tracing = True
        try:
            if args.stream:
                text = "".join(str(c.content) for c in llm.stream("ping"))
            else:
                text = str(llm.invoke("ping").content)
        finally:
            tracing = False
        return {"out": text}

    async def anode(state: State) -> State:
        nonlocal tracing
        tracing = True
        try:
            if args.stream:
                text = "".join([str(c.content) async for c in llm.astream("ping")])
            else:
                text = str((await llm.ainvoke("ping")).content)
        finally:
            tracing = False
        return {"out": text}

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if tracing and event == "call":
            mod = frame.f_globals.get("__name__", "")
            if mod.startswith("murakkab_lg") and mod not in traced:
                traced.append(mod)

    g = StateGraph(State)
    g.add_node("n", anode if args.use_async else node, metadata={"murakkab": {"intent": "classify"}})
    g.add_edge(START, "n")
    g.add_edge("n", END)
    with ScriptedServer(name="path", models=("m",)) as server:
        from murakkab_lg.spec import Deployment

        if args.scripted_engine:  # the test engine adapter (also present in older versions, for comparison)
            runtime = scripted_runtime(server, {"d": {"classify": 0.9}})
        else:
            from murakkab_lg.spec import OpenAiServerSettings

            dep = Deployment(name="d", model="m", engine=OpenAiServerSettings(base_url=server.url, served_model="m"))
            runtime = Runtime([dep], ProfileStore([synthetic_profile("d", quality={"classify": 0.9})],
                                                  source="synthetic"))
        with runtime:
            app = wrap(g.compile(), runtime=runtime)

            async def twice() -> None:  # on one loop, so the second call finds its connection open
                await app.ainvoke({})  # warm-up: plan, start, connect
                sys.setprofile(profiler)
                try:
                    await app.ainvoke({})
                finally:
                    sys.setprofile(None)

            if args.use_async:
                asyncio.run(twice())
            else:
                app.invoke({})  # warm-up: plan, start, connect
                sys.setprofile(profiler)
                try:
                    app.invoke({})
                finally:
                    sys.setprofile(None)
    what = ("a" if args.use_async else "") + ("stream" if args.stream else "invoke")
    print(f"{len(traced)} murakkab_lg modules on one intercepted {what}:")
    for m in traced:
        print("  " + m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
