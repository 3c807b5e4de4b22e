"""wrap() with the embedded llama-server ladder (tiny + small): real models behind real graphs.

The tasks are ones a 135M/0.5B model can do: short free text, and JSON whose shape llama-server
enforces with a grammar built from the request's JSON schema. The profiles that drive the plan
are synthetic fixtures (tiny cheaper, small better), so which node lands where is known in
advance; serving, streaming, tokens and estimated energy are real.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict

import pytest
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel

from murakkab_lg import Intent, Runtime, annotate, wrap
from murakkab_lg.catalog.embedded import embedded_deployments
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.testing.scripted_engine import synthetic_profile

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("tiny_model", "small_model")]

TINY, SMALL = "smollm2-135m", "qwen2.5-coder-0.5b"
_INTENTS = ("summarize", "classify", "answer")


@pytest.fixture(scope="module")
def runtime():
    deps = embedded_deployments(["tiny", "small"])
    store = ProfileStore([
        synthetic_profile(TINY, quality=dict.fromkeys(_INTENTS, 0.5), energy_per_output_token_j=0.05),
        synthetic_profile(SMALL, quality=dict.fromkeys(_INTENTS, 0.85), energy_per_output_token_j=0.2),
    ], source="synthetic fixture (tests)")
    rt = Runtime(deps, store)
    yield rt
    rt.close()


@pytest.fixture
def llm():
    # The user's model, pointed at an address nothing listens on: a call that escaped interception fails loudly.
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_tokens=12,
                      temperature=0, max_retries=0)


class MapReduce(TypedDict):
    topics: list[str]
    summaries: Annotated[list[str], operator.add]
    final: str


def test_map_reduce_with_send(runtime, llm):
    def fan_out(state: MapReduce) -> list[Send]:
        return [Send("summarize_one", {"topics": [t]}) for t in state["topics"]]

    def summarize_one(state: MapReduce) -> dict:
        return {"summaries": [llm.invoke(f"One sentence about {state['topics'][0]}.").content]}

    def combine(state: MapReduce) -> dict:
        return {"final": llm.invoke("Combine: " + " ".join(state["summaries"])).content}

    g = StateGraph(MapReduce)
    g.add_node("summarize_one", summarize_one, metadata={"murakkab": {"intent": "summarize"}})
    g.add_node("combine", combine, metadata={"murakkab": {"intent": "summarize", "min_quality": 0.8}})
    g.add_conditional_edges(START, fan_out, ["summarize_one"])
    g.add_edge("summarize_one", "combine")
    g.add_edge("combine", END)
    app = wrap(g.compile(), runtime=runtime)
    out = app.invoke({"topics": ["cats", "rain", "bread"], "summaries": []})
    assert len(out["summaries"]) == 3 and all(s.strip() for s in out["summaries"]) and out["final"].strip()
    report = app.last_report()
    assert report.served() == {"summarize_one": (TINY,), "combine": (SMALL,)}
    assert report.node("summarize_one").calls == 3 and report.node("combine").calls == 1
    assert report.node("summarize_one").completion_tokens > 0
    assert all(n.energy_label == "estimated" and n.energy_j is not None for n in report.nodes)


class Chat(TypedDict):
    question: str
    answer: str


async def test_async_graph_streams_tokens_in_messages_mode(runtime, llm):
    async def answer(state: Chat) -> dict:
        return {"answer": (await llm.ainvoke(state["question"])).content}

    g = StateGraph(Chat)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    graph = annotate(g.compile(), {"answer": Intent("answer")})
    app = wrap(graph, runtime=runtime)
    tokens, final = [], None
    async for event, payload in app.astream({"question": "Name a color."}, stream_mode=["messages", "values"]):
        if event == "messages":
            chunk, meta = payload
            assert meta["langgraph_node"] == "answer"
            if chunk.content:
                tokens.append(chunk.content)
        else:
            final = payload
    assert len(tokens) >= 2, tokens  # streamed token by token, not one message at the end
    assert "".join(tokens) == final["answer"]
    assert app.last_report().served() == {"answer": (TINY,)}


class Verdict(BaseModel):
    label: Literal["positive", "negative"]
    confident: bool


class Review(TypedDict):
    text: str
    verdict: Verdict


def test_with_structured_output_pydantic(runtime, llm):
    def classify(state: Review) -> dict:
        return {"verdict": llm.with_structured_output(Verdict).invoke(f"Classify the sentiment: {state['text']}")}

    g = StateGraph(Review)
    g.add_node("classify", classify)
    g.add_edge(START, "classify")
    app = wrap(annotate(g.compile(), {"classify": Intent("classify", min_quality=0.8)}), runtime=runtime)
    out = app.invoke({"text": "I love this phone, it is wonderful."})
    assert isinstance(out["verdict"], Verdict)
    assert app.last_report().served() == {"classify": (SMALL,)}
