"""The acceptance for tool calls on the embedded default: a real `create_agent` agent with one tool,
wrapped on the embedded ladder, calls its tool and finishes.

The user's model is a ChatOpenAI pointed at an address nothing listens on, so every call that
reaches an answer went through the runtime to a real llama-server (the 0.5B model). Before the
schema-constrained tool calls (backends/engines/tool_calls.py) this agent never called its tool:
the model wrote the call as JSON text and `tool_calls` stayed empty.
"""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from murakkab_lg import Intent, Runtime, annotate, wrap

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("small_model")]

SMALL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime.embedded(["small"])
    yield rt
    rt.close()


def _agent(seen: list[str], **kwargs):
    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        seen.append(city)
        return f"It is 18 degrees and sunny in {city}."

    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_tokens=64,
                     temperature=0, max_retries=0)
    return create_agent(llm, tools=[get_weather], system_prompt="You are a helpful assistant.", **kwargs)


def test_create_agent_calls_its_tool_and_finishes(runtime):
    seen: list[str] = []
    app = wrap(annotate(_agent(seen), {"model": Intent("tool-use", expected_iterations=2)}), runtime=runtime)
    out = app.invoke({"messages": [{"role": "user", "content": "What is the weather in Paris?"}]})
    msgs = out["messages"]
    calls = [c for m in msgs if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls and calls[0]["name"] == "get_weather" and calls[0]["args"] == {"city": "Paris"}
    assert seen[0] == "Paris"
    assert any(isinstance(m, ToolMessage) and "sunny" in m.content for m in msgs)
    final = msgs[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.content.strip()
    assert app.last_report().served() == {"model": (SMALL,)}


async def test_streamed_agent_gets_the_tool_call_as_one_delta(runtime):
    seen: list[str] = []
    app = wrap(annotate(_agent(seen), {"model": Intent("tool-use", expected_iterations=2)}), runtime=runtime)
    chunks = []
    async for chunk, meta in app.astream({"messages": [{"role": "user", "content": "Weather in Tokyo?"}]},
                                         stream_mode="messages"):
        if meta["langgraph_node"] == "model" and getattr(chunk, "tool_call_chunks", None):
            chunks.extend(chunk.tool_call_chunks)
    assert seen and seen[0] == "Tokyo"
    assert chunks[0]["name"] == "get_weather" and '"Tokyo"' in chunks[0]["args"]


class Report(BaseModel):
    city: str
    summary: str


def test_an_agent_with_structured_output_calls_its_tool_then_answers_in_its_schema(runtime):
    """create_agent(response_format=...) sends tools and response_format together; both hold."""
    seen: list[str] = []
    agent = _agent(seen, response_format=Report)
    app = wrap(annotate(agent, {"model": Intent("tool-use", expected_iterations=2)}), runtime=runtime)
    out = app.invoke({"messages": [{"role": "user", "content": "What is the weather in Rome?"}]})
    assert seen == ["Rome"]
    assert isinstance(out["structured_response"], Report) and out["structured_response"].city == "Rome"
