"""Schema building and answer mapping for tool calls served through a JSON schema.

The engine side is checked for real in tests/integrations/test_tools_embedded.py (llama-server
and a create_agent agent); here the pure parts: which schema a request gets, and how an answer,
whole or streamed, becomes OpenAI `tool_calls`.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from murakkab_lg.backends.engines.tool_calls import ANSWER_KEY, constrain, parse_output, tools_schema
from murakkab_lg.errors import EngineRequestError

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ORDER = {"type": "function", "function": {"name": "find_order", "parameters": {
    "type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
    "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}}}


def _body(**kw):
    return {"model": "m", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": [WEATHER], **kw}


def test_auto_schema_admits_each_tool_call_and_a_plain_answer_only():
    schema = tools_schema([WEATHER, ORDER], "auto")
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Oslo"}}, schema)
    jsonschema.validate({"name": "find_order", "arguments": {"item": {"id": 3}}}, schema)
    jsonschema.validate({ANSWER_KEY: "hello"}, schema)
    for bad in ({"name": "get_weather", "arguments": {}}, {"name": "nope", "arguments": {"city": "x"}},
                {"name": "find_order", "arguments": {"item": {"id": "x"}}}, {"text": "hi"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_refs_move_to_the_root_under_the_tool_name():
    schema = tools_schema([ORDER], "required")
    assert schema["$defs"] == {"find_order__Item": ORDER["function"]["parameters"]["$defs"]["Item"]}
    assert schema["properties"]["arguments"]["properties"]["item"] == {"$ref": "#/$defs/find_order__Item"}


def test_required_and_named_choices_exclude_the_plain_answer():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({ANSWER_KEY: "hi"}, tools_schema([WEATHER, ORDER], "required"))
    named = tools_schema([WEATHER, ORDER], {"type": "function", "function": {"name": "find_order"}})
    assert named["properties"]["name"] == {"const": "find_order"}
    with pytest.raises(EngineRequestError, match="not among the tools"):
        tools_schema([WEATHER], {"type": "function", "function": {"name": "nope"}})


def test_constrain_rewrites_the_request():
    assert constrain({"model": "m", "messages": []}) is None
    ct = constrain(_body(tool_choice="required", parallel_tool_calls=True))
    req = ct.request
    assert "tools" not in req and "tool_choice" not in req and "parallel_tool_calls" not in req
    assert req["response_format"]["type"] == "json_schema"
    assert "get_weather" in req["messages"][0]["content"] and req["messages"][0]["role"] == "system"
    assert ct.answer_request is None  # required: no plain answer to fall back on
    none = constrain(_body(tool_choice="none"))
    assert "response_format" not in none.request and "tools" not in none.request


def test_constrain_refuses_llama_servers_own_constraints_with_tools():
    with pytest.raises(EngineRequestError, match="grammar") as e:
        constrain(_body(grammar="root ::= [a-z]+"))
    assert e.value.status_code == 400
    with pytest.raises(EngineRequestError, match="not supported with tools"):
        constrain(_body(response_format={"type": "json_schema"}))


VERDICT = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"$ref": "#/$defs/T"}},
           "required": ["city", "temp"], "$defs": {"T": {"type": "integer"}}}


def test_a_structured_answer_follows_the_requests_response_format():
    """create_agent(response_format=...) sends tools and response_format together."""
    rf = {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": VERDICT}}
    ct = constrain(_body(response_format=rf))
    schema = ct.request["response_format"]["json_schema"]["schema"]
    jsonschema.validate({"city": "Oslo", "temp": 3}, schema)
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Oslo"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({ANSWER_KEY: "hi"}, schema)
    assert schema["$defs"] == {"answer__T": {"type": "integer"}}
    assert "matches this schema" in ct.request["messages"][0]["content"]
    msg = ct.response(_resp('{"city": "Oslo", "temp": 3}'))["choices"][0]["message"]
    assert json.loads(msg["content"]) == {"city": "Oslo", "temp": 3} and "tool_calls" not in msg
    call = ct.response(_resp('{"name": "get_weather", "arguments": {"city": "Oslo"}}'))["choices"][0]
    assert call["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert constrain(_body(response_format={"type": "json_object"})).structured


def test_tool_turns_of_the_history_become_text():
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    ct = constrain(_body(messages=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "cold"},
    ]))
    msgs = ct.request["messages"]
    assert msgs[2] == {"role": "assistant", "content": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'}
    assert msgs[3] == {"role": "user", "content": "Result of get_weather: cold"}


def _resp(content, reason="stop", usage=None):
    return {"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                                  "finish_reason": reason}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def test_answers_map_to_tool_calls_content_or_the_raw_text():
    ct = constrain(_body())
    msg = ct.response(_resp('{"name": "get_weather", "arguments": {"city": "Oslo"}}'))["choices"][0]
    assert msg["finish_reason"] == "tool_calls" and msg["message"]["content"] is None
    (call,) = msg["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert ct.response(_resp('{"content": "It is cold."}'))["choices"][0]["message"]["content"] == "It is cold."
    cut = ct.response(_resp('{"name": "get_wea', reason="length"))["choices"][0]
    assert cut["message"]["content"] == '{"name": "get_wea' and cut["finish_reason"] == "length"
    cut = ct.response(_resp('{"content": "It is \\"cold\\" in Os', reason="length"))["choices"][0]
    assert cut["message"]["content"] == 'It is "cold" in Os' and cut["finish_reason"] == "length"
    assert parse_output('{"content": "a\\') == ("a", None)  # a half escape is dropped
    assert parse_output("[1, 2]") == ("[1, 2]", None)


def test_a_repeated_identical_call_is_asked_again_as_an_answer():
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    ct = constrain(_body(messages=[{"role": "user", "content": "Weather in Oslo?"},
                                   {"role": "assistant", "content": None, "tool_calls": [call]},
                                   {"role": "tool", "tool_call_id": "c1", "content": "cold"}]))
    sent = []
    answers = iter(['{"name": "get_weather", "arguments": {"city": "Oslo"}}', '{"content": "It is cold."}'])

    def send(req):
        sent.append(req)
        return _resp(next(answers))

    out = ct.complete(send)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "It is cold."}
    assert out["usage"]["completion_tokens"] == 10  # both tries counted
    schema = sent[1]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == [ANSWER_KEY]
    # another city is a new call: it passes untouched
    other = constrain(_body(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}]))
    assert other.repeats([{"function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]) is False
    assert other.repeats([{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]) is True


def _chunks(text, usage=True):
    base = {"id": "x", "object": "chat.completion.chunk", "model": "m", "created": 1}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 4]}, "finish_reason": None}]}
            for i in range(0, len(text), 4)]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        out.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
    return out


def _check_streamed_call(chunks):
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"]["tool_calls"][0]["index"] == 0
    assert deltas[0]["delta"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert deltas[-1]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 4 and not chunks[-1]["choices"]


def test_a_streamed_call_arrives_as_one_tool_calls_delta():
    ct = constrain(_body())
    call = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    _check_streamed_call(list(ct.stream(lambda req: iter(_chunks(call)))))
    text = list(ct.stream(lambda req: iter(_chunks('{"content": "Snow."}', usage=False))))
    assert text[0]["choices"][0]["delta"]["content"] == "Snow." and text[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_streamed_call_async():
    ct = constrain(_body())

    async def send(req):
        for c in _chunks('{"name": "get_weather", "arguments": {"city": "Oslo"}}'):
            yield c

    async def collect():
        return [c async for c in ct.astream(send)]

    _check_streamed_call(asyncio.run(collect()))


def test_the_schema_is_plain_json():
    json.dumps(tools_schema([WEATHER, ORDER]))  # goes over the wire as it is
