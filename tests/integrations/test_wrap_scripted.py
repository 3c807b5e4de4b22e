"""wrap() on real LangGraph graphs whose deployments are served by a real scripted HTTP server.

These are the cases a 135M model cannot answer reliably (a two-tool agent, exact routing over the
wire), so the "model" is scripted; everything else (LangGraph, LangChain chat models, httpx,
uvicorn, the Runtime, the planner) is the real thing.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain.chat_models import init_chat_model
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from murakkab_lg import Intent, annotate, wrap
from murakkab_lg.errors import ConfigError
from murakkab_lg.testing.scripted_engine import Reply, ToolCall, scripted_runtime, synthetic_profile

pytestmark = pytest.mark.timeout(120)

_INTENTS = ("plan", "summarize", "classify", "answer")
# Synthetic (fixture) profiles: `small` is cheaper on energy, `big` is the only one above 0.8 quality.
PROFILES = {"small": synthetic_profile("small", quality=dict.fromkeys(_INTENTS, 0.6), energy_per_output_token_j=0.05),
            "big": synthetic_profile("big", quality=dict.fromkeys(_INTENTS, 0.9), energy_per_output_token_j=0.2)}


def _echo(req: Any) -> Reply:
    """The engine says which deployment answered, so outputs show routing too."""
    return Reply.text(f"engine {req.model}")


class Notes(TypedDict):
    notes: Annotated[list[str], lambda a, b: a + b]


def _node(llm: Any, prompt: str):
    def run(state: Notes) -> dict:
        return {"notes": [llm.invoke(prompt).content]}
    return run


# -- acceptance: create_agent with two tools --------------------------------------------------
@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _agent_script(req: Any) -> Reply:
    results = [m["content"] for m in req.messages if m.get("role") == "tool"]
    if not results:
        return Reply.tools(ToolCall("add", {"a": 2, "b": 3}), ToolCall("multiply", {"a": 4, "b": 5}))
    return Reply.text("results " + " ".join(results))


def test_create_agent_two_tools_routed_to_planned_deployment(runtime, engine, provider, llm):
    engine.responder = _agent_script
    try:
        agent = create_agent(llm, tools=[add, multiply])
        annotate(agent, {"model": Intent("plan", min_quality=0.8, expected_iterations=2)})
        app = wrap(agent, runtime=runtime)
        out = app.invoke({"messages": [("user", "add 2 and 3, multiply 4 and 5")]})
    finally:
        engine.responder = _echo
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "ToolMessage", "AIMessage"]
    assert [m.content for m in out["messages"][2:4]] == ["5", "20"]
    assert out["messages"][-1].content == "results 5 20"
    assert app.murakkab_plan.choice("model").deployment == "big"  # min_quality 0.8 rules out small
    assert app.last_report().served() == {"model": ("big",)}
    assert app.last_report().node("model").calls == 2
    sent = engine.received(model="big")
    assert len(sent) == 2 and all({t["function"]["name"] for t in r.body["tools"]} == {"add", "multiply"}
                                  for r in sent)
    assert provider.requests == []


# -- acceptance: subgraph node named like an outer node ---------------------------------------
def _same_named_graph(llm: Any, *, dynamic: bool) -> CompiledStateGraph:
    inner = StateGraph(Notes)
    inner.add_node("summarize", _node(llm, "inner summary"))
    inner.add_edge(START, "summarize")
    inner = inner.compile()
    outer = StateGraph(Notes)
    outer.add_node("summarize", _node(llm, "outer summary"))
    outer.add_node("research", (lambda s: inner.invoke({"notes": []})) if dynamic else inner)
    outer.add_edge(START, "summarize")
    outer.add_edge("summarize", "research")
    return outer.compile()


@pytest.mark.parametrize("dynamic", [False, True], ids=["subgraph-as-node", "subgraph-called-in-node"])
def test_same_named_nodes_in_subgraph_are_told_apart(runtime, engine, provider, llm, dynamic):
    graph = _same_named_graph(llm, dynamic=dynamic)
    annotate(graph, {"summarize": Intent("summarize"),  # cheapest: small
                     "research/summarize": Intent("summarize", min_quality=0.8)})  # only big qualifies
    app = wrap(graph, runtime=runtime)
    out = app.invoke({"notes": []})
    report = app.last_report()
    assert report.served() == {"summarize": ("small",), "research/summarize": ("big",)}
    assert {c.node: c.deployment for c in app.murakkab_plan.choices} == {"summarize": "small",
                                                                        "research/summarize": "big"}
    assert out["notes"][0] == "engine small" and out["notes"][-1] == "engine big"
    assert provider.requests == []


# -- acceptance: an unannotated node is not routed --------------------------------------------
def test_unannotated_node_passes_through_untouched(runtime, engine, provider, llm):
    g = StateGraph(Notes)
    g.add_node("classify", _node(llm, "label this"), metadata={"murakkab": {"intent": "classify"}})
    g.add_node("chat", _node(llm, "free chat"))
    g.add_edge(START, "classify")
    g.add_edge("classify", "chat")
    app = wrap(g.compile(), runtime=runtime)
    out = app.invoke({"notes": []})
    assert out["notes"] == ["engine small", "provider says hi"]
    assert app.last_report().served() == {"classify": ("small",)}
    assert [r.node for r in runtime.telemetry.records()] == ["classify"]
    (req,) = provider.requests
    assert req.model == "gpt-4o-mini" and "murakkab" not in req.body  # the user's request, as the user wrote it
    assert not any(k.startswith("x-murakkab") for k in req.headers)


def test_default_routes_unannotated_calls(runtime, engine, provider, llm):
    g = StateGraph(Notes)
    g.add_node("chat", _node(llm, "free chat"))
    g.add_edge(START, "chat")
    app = wrap(g.compile(), runtime=runtime, default="big")
    assert app.invoke({"notes": []})["notes"] == ["engine big"]
    assert app.last_report().served() == {"chat": ("big",)}
    assert provider.requests == []
    with pytest.raises(ConfigError, match="neither a deployment"):
        wrap(g.compile(), runtime=runtime, default="nonsense")


# -- every kind of chat model and call style inside an annotated node -------------------------
def test_model_kinds_and_call_styles_are_all_intercepted(runtime, engine, provider, llm):
    fake = GenericFakeChatModel(messages=itertools.repeat("fake model answer"))  # any BaseChatModel
    inited = init_chat_model("openai:gpt-4o-mini", api_key="sk-test", base_url=provider.url)

    def node(state: Notes) -> dict:
        notes = [fake.invoke("any model").content, inited.invoke("init_chat_model").content]
        notes += [m.content for m in llm.batch(["one", "two"])]
        notes.append("".join(c.content for c in llm.stream("streamed")))
        tool_msg = llm.bind_tools([add]).invoke("use a tool")
        notes.append(tool_msg.tool_calls[0]["name"])
        return {"notes": notes}

    g = StateGraph(Notes)
    g.add_node("work", node, metadata={"murakkab": {"intent": "answer"}})
    g.add_edge(START, "work")
    engine.responder = lambda r: Reply.tools(ToolCall("add", {"a": 1, "b": 2})) if r.body.get("tools") else _echo(r)
    try:
        app = wrap(g.compile(), runtime=runtime)
        out = app.invoke({"notes": []})
    finally:
        engine.responder = _echo
    assert out["notes"] == ["engine small"] * 5 + ["add"]
    assert app.last_report().node("work").calls == 6
    assert provider.requests == []
    streamed = engine.received(stream=True)
    assert len(streamed) == 1 and streamed[0].model == "small"


# -- the route on the wire (server mode) ------------------------------------------------------
def test_server_mode_requests_carry_the_route(engine, provider, llm):
    """Pointed at a URL, wrap() sends OpenAI requests with model, body field and headers."""
    engine.clear()
    graph = _same_named_graph(llm, dynamic=False)
    annotate(graph, {"research/summarize": Intent("summarize", min_quality=0.8, latency_slo_s=2.0)})
    app = wrap(graph, runtime=engine.url)
    notes = app.invoke({"notes": []})["notes"]
    assert notes[0] == "provider says hi" and notes[-1] == "engine murakkab/summarize"  # outer node untouched
    (req,) = engine.requests
    assert req.model == "murakkab/summarize"
    assert req.murakkab["node"] == "research/summarize" and req.murakkab["intent"] == "summarize"
    assert req.murakkab["constraints"]["min_quality"] == 0.8 and req.murakkab["constraints"]["latency_slo_s"] == 2.0
    assert req.headers["x-murakkab-node"] == "research/summarize"
    assert req.headers["x-murakkab-intent"] == "summarize"
    assert app.last_report().served() == {"research/summarize": ("murakkab/summarize",)}


# -- no leak ----------------------------------------------------------------------------------
def _one_node_graph(llm: Any) -> CompiledStateGraph:
    g = StateGraph(Notes)
    g.add_node("answer", _node(llm, "q"), metadata={"murakkab": {"intent": "answer"}})
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    return g.compile()


def test_no_leak_between_wrapped_and_unwrapped_runs_in_threads(runtime, engine, provider, llm):
    plain = _one_node_graph(llm)
    app = wrap(_one_node_graph(llm), runtime=runtime)
    start = threading.Barrier(8)

    def run(i: int) -> str:
        start.wait()
        graph = app if i % 2 else plain
        return graph.invoke({"notes": []})["notes"][0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    assert results == ["provider says hi", "engine small"] * 4
    assert len(provider.requests) == 4 and len(engine.requests) == 4


async def test_no_leak_between_wrapped_and_unwrapped_runs_in_asyncio(runtime, engine, provider, llm):
    async def anode(state: Notes) -> dict:
        await asyncio.sleep(0.01)  # interleave the two runs
        return {"notes": [(await llm.ainvoke("q")).content]}

    def graph() -> CompiledStateGraph:
        g = StateGraph(Notes)
        g.add_node("answer", anode, metadata={"murakkab": {"intent": "answer"}})
        g.add_edge(START, "answer")
        return g.compile()

    app, plain = wrap(graph(), runtime=runtime), graph()
    results = await asyncio.gather(*[(app if i % 2 else plain).ainvoke({"notes": []}) for i in range(6)])
    assert [r["notes"][0] for r in results] == ["provider says hi", "engine small"] * 3
    assert len(engine.requests) == 3 and len(provider.requests) == 3


def test_code_run_between_stream_chunks_is_not_intercepted(runtime, engine, provider, llm):
    app = wrap(_one_node_graph(llm), runtime=runtime)
    seen = [(chunk, llm.invoke("consumer's own call").content) for chunk in app.stream({"notes": []})]
    assert seen == [({"answer": {"notes": ["engine small"]}}, "provider says hi")]
    assert len(engine.requests) == 1 and len(provider.requests) == 1


# -- the graph's own surface --------------------------------------------------------------------
def test_checkpointer_threads_with_config_and_batch(runtime, engine, provider, llm):
    graph = _one_node_graph(llm).builder.compile(checkpointer=InMemorySaver())
    app = wrap(graph, runtime=runtime)
    assert isinstance(app, CompiledStateGraph) and app.get_graph().nodes.keys() == graph.get_graph().nodes.keys()
    cfg = {"configurable": {"thread_id": "t1"}}
    app.invoke({"notes": []}, cfg)
    app.invoke({"notes": []}, cfg)
    assert app.get_state(cfg).values["notes"] == ["engine small", "engine small"]
    tagged = app.with_config(tags=["mine"])
    assert tagged.last_report is not None and tagged.invoke({"notes": []}, {"configurable": {"thread_id": "t2"}})[
        "notes"] == ["engine small"]
    outs = app.batch([{"notes": []}] * 2, [{"configurable": {"thread_id": f"b{i}"}} for i in range(2)])
    assert [o["notes"] for o in outs] == [["engine small"]] * 2
    assert provider.requests == [] and len(engine.requests) == 5
    assert graph.invoke({"notes": []}, {"configurable": {"thread_id": "t3"}})["notes"] == ["provider says hi"]


def test_server_mode_end_to_end_through_murakkab_serve(engine, provider, llm):
    """wrap(graph, runtime=<murakkab serve URL>): the real server routes by the carried annotation."""
    import socket

    import uvicorn

    from murakkab_lg.server.app import create_app

    engine.clear()
    runtime = scripted_runtime(engine, PROFILES)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, api_keys=[]), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.01)
        graph = _same_named_graph(llm, dynamic=False)
        annotate(graph, {"summarize": Intent("summarize"),
                         "research/summarize": Intent("summarize", min_quality=0.8)})
        app = wrap(graph, runtime=f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
        notes = app.invoke({"notes": []})["notes"]
        assert notes[0] == "engine small" and notes[-1] == "engine big"
        assert app.last_report().served() == {"summarize": ("small",), "research/summarize": ("big",)}
        assert [r.model for r in engine.requests] == ["small", "big"]  # what the server sent its engines
        assert provider.requests == []
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()
