"""Real clients (openai SDK, litellm, langchain-openai) against a real server on 127.0.0.1.

The engine behind the Runtime is the instant engine, which answers tool calls and JSON formats
deterministically; the routing comes from synthetic profiles (see conftest.QUALITY).
"""

from __future__ import annotations

import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletion

from murakkab_lg.runtime import Runtime

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "unit": {"type": "string", "enum": ["C", "F"]}},
                       "required": ["city", "unit"]},
    },
}
MSGS = [{"role": "user", "content": "hello murakkab"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)


def test_models_list_intents_and_deployments(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "murakkab/classify" in ids and "murakkab/code" in ids
    assert "fast" in ids and "smart" in ids
    assert client.models.retrieve("murakkab/classify").id == "murakkab/classify"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("murakkab/nope")


def test_openai_sync_routes_by_intent_and_constraints(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="murakkab/classify", messages=MSGS, temperature=0,
                                                           seed=7, user="u1", max_tokens=5)
    resp = raw.parse()
    assert isinstance(resp, ChatCompletion)
    assert resp.choices[0].message.content == "instant: hello murakkab"
    assert raw.headers["x-murakkab-deployment"] == "fast"  # cheapest without a quality floor
    assert resp.usage is not None and resp.usage.total_tokens > 0
    # The body field's constraint moves the call to the only deployment that meets it.
    raw = client.chat.completions.with_raw_response.create(
        model="murakkab/classify", messages=MSGS, extra_body={"murakkab": {"intent": "classify", "min_quality": 0.8}})
    assert raw.headers["x-murakkab-deployment"] == "smart"


def test_openai_max_tokens_and_stop_reach_the_engine(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "one two three four five six"}]
    short = client.chat.completions.create(model="fast", messages=long, max_completion_tokens=3)
    assert short.choices[0].message.content == "instant: one two"
    stopped = client.chat.completions.create(model="fast", messages=long, stop=[" four"])
    assert stopped.choices[0].message.content == "instant: one two three"


async def test_openai_async(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0) as aclient:
        resp = await aclient.chat.completions.create(model="murakkab/extract", messages=MSGS)
        assert resp.choices[0].message.content == "instant: hello murakkab"
        stream = await aclient.chat.completions.create(model="murakkab/extract", messages=MSGS, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "instant: hello murakkab"


def test_openai_stream_with_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="murakkab/answer", messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "instant: hello murakkab"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    # Without include_usage the client gets no usage (the server still asks the engine for it).
    plain = list(client.chat.completions.create(model="murakkab/answer", messages=MSGS, stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)


def test_openai_tools_non_streaming(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="murakkab/code", messages=MSGS, tools=[WEATHER_TOOL],
                                          tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "x", "unit": "C"}


def test_openai_tools_streaming_deltas_by_index(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="murakkab/code", messages=MSGS, tools=[WEATHER_TOOL],
                                            tool_choice="required", stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            slot["name"] += (tc.function and tc.function.name) or ""
            slot["arguments"] += (tc.function and tc.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "x", "unit": "C"}


def test_openai_response_format_json_schema_and_object(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["bug", "billing"]},
                                               "urgent": {"type": "boolean"}}, "required": ["label", "urgent"]}
    resp = client.chat.completions.create(model="murakkab/classify", messages=MSGS, response_format={
        "type": "json_schema", "json_schema": {"name": "ticket", "schema": schema, "strict": True}})
    assert json.loads(resp.choices[0].message.content or "") == {"label": "bug", "urgent": True}
    resp = client.chat.completions.create(model="murakkab/classify", messages=MSGS,
                                          response_format={"type": "json_object"})
    assert isinstance(json.loads(resp.choices[0].message.content or ""), dict)


def test_litellm_completion_acompletion_and_stream(base_url: str, runtime: Runtime) -> None:
    import asyncio

    import litellm

    kw = {"api_base": base_url + "/v1", "api_key": "unused", "messages": MSGS}
    mark = runtime.telemetry.mark()
    resp = litellm.completion(model="openai/murakkab/classify", extra_body={"murakkab": {
        "intent": "classify", "min_quality": 0.8, "node": "triage", "workflow": "support"}}, **kw)
    assert resp.choices[0].message.content == "instant: hello murakkab"
    rec = runtime.telemetry.since(mark)[-1]
    assert (rec.deployment, rec.intent, rec.node, rec.workflow) == ("smart", "classify", "triage", "support")

    aresp = asyncio.run(litellm.acompletion(model="openai/murakkab/extract", **kw))
    assert aresp.choices[0].message.content == "instant: hello murakkab"

    chunks = list(litellm.completion(model="openai/murakkab/answer", stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "instant: hello murakkab"


def test_langchain_chat_openai_bind_tools(base_url: str) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    llm = ChatOpenAI(model="murakkab/code", base_url=base_url + "/v1", api_key="unused", max_retries=0)
    msg = llm.bind_tools([get_weather]).invoke("weather in Paris?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"
    assert msg.tool_calls[0]["args"] == {"city": "x"}
    streamed = None
    for chunk in llm.bind_tools([get_weather], tool_choice="get_weather").stream("weather?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.tool_calls[0]["args"] == {"city": "x"}
    plain = llm.invoke("hi")
    assert plain.content == "instant: hi"


def test_langchain_structured_output_json_schema(base_url: str) -> None:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class Ticket(BaseModel):
        label: str
        urgent: bool

    llm = ChatOpenAI(model="murakkab/extract", base_url=base_url + "/v1", api_key="unused", max_retries=0)
    got = llm.with_structured_output(Ticket, method="json_schema").invoke("Charged twice!")
    assert got == Ticket(label="x", urgent=True)
    got = llm.with_structured_output(Ticket, method="function_calling").invoke("Charged twice!")
    assert got == Ticket(label="x", urgent=True)


@pytest.mark.parametrize("text", ["hello murakkab", "@instant chunk_delay=0.02 words=5"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_stream_ends_once_and_is_recorded_as_served(client: openai.OpenAI, runtime: Runtime, text: str,
                                                           include_usage: bool) -> None:
    """A short answer arrives with the engine's [DONE] in one read (the server ends the response in
    one write), a slow one in several: either way the client sees every chunk and usage only if it
    asked, and the call is recorded as served with its first-token time and tokens."""
    mark = runtime.telemetry.mark()
    opts = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model="murakkab/answer", messages=[{"role": "user", "content": text}],
                                                 stream=True, **opts))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith("instant:") and len(content.split()) > 1
    usage = [c.usage for c in chunks if c.usage is not None]
    assert (len(usage), chunks[-1].usage is not None) == ((1, True) if include_usage else (0, False))
    deadline = time.monotonic() + 5  # the record is written just after the response's last byte
    while not runtime.telemetry.since(mark) and time.monotonic() < deadline:
        time.sleep(0.01)
    rec = runtime.telemetry.since(mark)[-1]
    assert rec.ok and rec.error is None and rec.ttft_s is not None and 0 < rec.ttft_s <= rec.latency_s
    assert rec.completion_tokens > 0
    if include_usage:
        assert usage[0].completion_tokens == rec.completion_tokens
