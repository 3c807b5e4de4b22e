"""LangChain messages and calls to OpenAI chat bodies, and OpenAI answers back to LangChain messages.

One module for both ways every integration converts (the interception of any chat model, and
MurakkabChat), so a tool call or a usage figure is mapped the same way whoever made the call.

An intercepted call may come from ChatOpenAI, ChatAnthropic or any other `BaseChatModel`, each
with its own kwargs (tools in its provider's format, structured-output bindings). The runtime only
speaks OpenAI chat bodies, so this module maps the call onto one: messages, the sampling settings
the model reports through `_get_ls_params`, and the OpenAI request fields LangChain bindings pass
as kwargs. Fields a provider invented (and an OpenAI engine would reject) are dropped, not guessed.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

__all__ = ("StructuredOutput", "ai_message", "chunk_from_data", "message_from_response", "openai_request",
           "openai_tool_choice")

Body = dict[str, Any]

# OpenAI chat request fields that pass through unchanged when a binding supplies them as kwargs.
_PASS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "parallel_tool_calls",
    "stream_options", "reasoning_effort", "service_tier", "metadata", "modalities", "prediction",
})
_LS_TO_OPENAI = (("ls_temperature", "temperature"), ("ls_max_tokens", "max_tokens"))


def openai_tool_choice(choice: Any) -> Any:
    """OpenAI's tool_choice from LangChain's spellings and other providers' forms."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, str):
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            return choice
        if kind == "tool" and "name" in choice:  # Anthropic
            return {"type": "function", "function": {"name": choice["name"]}}
        if kind == "any":
            return "required"
        if kind in ("auto", "none"):
            return kind
    return choice


def _usage_metadata(usage: Body | None) -> dict[str, int] | None:
    """OpenAI's usage as LangChain's usage_metadata (None when the answer carried none)."""
    if not usage:
        return None
    return {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0)}


def ai_message(resp: Body) -> AIMessage:
    """An OpenAI chat completion as LangChain's AIMessage (tool calls parsed; bad JSON kept as invalid)."""
    msg = resp["choices"][0]["message"]
    tool_calls, invalid = [], []
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function", {})
        try:
            args = json.loads(fn.get("arguments") or "{}")
            tool_calls.append({"name": fn.get("name", ""), "args": args, "id": tc.get("id"), "type": "tool_call"})
        except ValueError as e:
            invalid.append({"name": fn.get("name"), "args": fn.get("arguments"), "id": tc.get("id"),
                            "error": str(e), "type": "invalid_tool_call"})
    return AIMessage(
        content=msg.get("content") or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage_metadata(resp.get("usage")),
        response_metadata={"model_name": resp.get("model"), "finish_reason": resp["choices"][0].get("finish_reason")},
        id=resp.get("id"),
    )


def chunk_from_data(data: Body) -> AIMessageChunk | None:
    """One streamed chunk as an AIMessageChunk (None for an empty keep-alive chunk)."""
    meta = _usage_metadata(data.get("usage"))
    if not data.get("choices"):
        return AIMessageChunk(content="", usage_metadata=meta) if meta else None
    choice = data["choices"][0]
    delta = choice.get("delta") or {}
    chunks = [
        tool_call_chunk(name=tc.get("function", {}).get("name"), args=tc.get("function", {}).get("arguments"),
                        id=tc.get("id"), index=tc.get("index"))
        for tc in delta.get("tool_calls") or []
    ]
    finish = choice.get("finish_reason")
    return AIMessageChunk(content=delta.get("content") or "", tool_call_chunks=chunks, usage_metadata=meta,
                          response_metadata={"finish_reason": finish} if finish else {}, id=data.get("id"))


class StructuredOutput:
    """Remembers that the request asked for a JSON schema, so the reply gets `parsed` like OpenAI's."""

    __slots__ = ("schema",)

    def __init__(self, schema: type[BaseModel] | None) -> None:
        self.schema = schema

    def parse(self, content: str) -> Any:
        try:
            value = json.loads(content)
        except ValueError:
            return None  # the caller's parser reports the bad output with the raw message
        if self.schema is not None and isinstance(value, dict):
            try:
                return self.schema.model_validate(value)
            except ValueError:
                return value
        return value


def _response_format(fmt: Any) -> tuple[Any, StructuredOutput | None]:
    if isinstance(fmt, type) and issubclass(fmt, BaseModel):
        schema = fmt.model_json_schema()
        return ({"type": "json_schema", "json_schema": {"name": fmt.__name__, "schema": schema, "strict": True}},
                StructuredOutput(fmt))
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        return fmt, StructuredOutput(None)
    return fmt, None


def openai_request(model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
                   kwargs: dict[str, Any]) -> tuple[Body, StructuredOutput | None]:
    """The OpenAI chat body for one call of `model`, and whether it asked for structured output."""
    body: Body = {"messages": convert_to_openai_messages(messages)}
    ls = model._get_ls_params(stop=stop)
    for src, dst in _LS_TO_OPENAI:
        value = ls.get(src)
        if value is not None:
            body[dst] = value
    stops = stop or ls.get("ls_stop")
    if stops:
        body["stop"] = stops
    structured = None
    for key, value in kwargs.items():
        if key == "tools":
            if value:
                body["tools"] = [convert_to_openai_tool(t) for t in value]
        elif key == "tool_choice":
            choice = openai_tool_choice(value)
            if choice is not None:
                body["tool_choice"] = choice
        elif key == "response_format":
            body["response_format"], structured = _response_format(value)
        elif key == "stop" and value:
            body["stop"] = value
        elif key in _PASS and value is not None:
            body[key] = value
    return body, structured


def message_from_response(resp: Body, structured: StructuredOutput | None) -> AIMessage:
    msg = ai_message(resp)
    if structured is not None and isinstance(msg.content, str) and msg.content:
        parsed = structured.parse(msg.content)
        if parsed is not None:
            msg.additional_kwargs["parsed"] = parsed
    return msg

