"""The in-process litellm provider (`murakkab/<intent>` with no server) over a real engine process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from server_support import make_runtime

from murakkab_lg.runtime import Runtime

MSGS = [{"role": "user", "content": "hello provider"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}]


@pytest.fixture(scope="module")
def provider_runtime(instant_url: str) -> Iterator[Runtime]:
    from murakkab_lg.integrations.litellm import register

    rt = make_runtime(instant_url)
    register(rt)
    yield rt
    rt.close()


def test_completion_routes_by_intent_and_annotation(provider_runtime: Runtime) -> None:
    import litellm

    resp = litellm.completion(model="murakkab/classify", messages=MSGS, temperature=0, max_tokens=8)
    assert resp.choices[0].message.content == "instant: hello provider"
    assert provider_runtime.telemetry.records()[-1].deployment == "fast"
    litellm.completion(model="murakkab/classify", messages=MSGS, murakkab={"min_quality": 0.8, "node": "triage"})
    rec = provider_runtime.telemetry.records()[-1]
    assert (rec.deployment, rec.node, rec.intent) == ("smart", "triage", "classify")
    litellm.completion(model="murakkab/smart", messages=MSGS)  # a deployment name pins it
    assert provider_runtime.telemetry.records()[-1].deployment == "smart"


def test_acompletion_stream_and_tools(provider_runtime: Runtime) -> None:
    import litellm

    resp = asyncio.run(litellm.acompletion(model="murakkab/extract", messages=MSGS))
    assert resp.choices[0].message.content == "instant: hello provider"
    text = "".join(c.choices[0].delta.content or "" for c in
                   litellm.completion(model="murakkab/answer", messages=MSGS, stream=True))
    assert text == "instant: hello provider"

    async def astream() -> str:
        out = [c.choices[0].delta.content or "" async for c in
               await litellm.acompletion(model="murakkab/answer", messages=MSGS, stream=True)]
        return "".join(out)

    assert asyncio.run(astream()) == "instant: hello provider"
    call = litellm.completion(model="murakkab/code", messages=MSGS, tools=TOOLS).choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"id": 1}
    args = "".join(tc.function.arguments or "" for c in
                   litellm.completion(model="murakkab/code", messages=MSGS, tools=TOOLS, stream=True)
                   for tc in c.choices[0].delta.tool_calls or [])
    assert json.loads(args) == {"id": 1}


def test_unknown_model_is_not_found(provider_runtime: Runtime) -> None:
    import litellm

    with pytest.raises(litellm.NotFoundError, match="murakkab/classify"):
        litellm.completion(model="murakkab/astrology", messages=MSGS)
