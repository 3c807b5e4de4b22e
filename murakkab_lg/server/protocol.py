"""Request types of the OpenAI-compatible endpoint.

Why our own: the `openai` package's request types are TypedDicts for building calls, and they have
no room for our `murakkab` field (the node's annotation), so the server validates requests with the
small types below and reuses the `openai` package's *response* types for the OpenAPI schema and for
`/v1/models`.

Why TypedDicts and not models: a request is checked once and then forwarded as the client's own
JSON, so nothing reads it as an object; validating into dicts takes 60 % of the time that building
model instances (request, messages) did, on every request. The checks that span fields are plain
functions run after the field checks (`AfterValidator`), as a model's validators would be.

Only the OpenAI chat fields listed in `ChatCompletionRequest` are forwarded to an engine. Anything
else a client sends is accepted and dropped (clients and SDKs add fields of their own), so a
request can never reach engine-specific settings (llama-server's slot ids or LoRA switches, vLLM's
extra sampling knobs): engine settings come from the operator's config only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from murakkab_lg.spec import Constraints

__all__ = (
    "CHAT_REQUEST",
    "FORWARDED_FIELDS",
    "ChatCompletionRequest",
    "ChatMessage",
    "MurakkabOptions",
    "ResponseFormat",
    "StreamOptions",
    "Tool",
    "include_usage",
)

# Nested OpenAI objects: validate what we rely on, keep the rest for the engine.
_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class ToolCallFunction(TypedDict):
    name: str
    arguments: NotRequired[str]


@with_config(_OPEN)
class ToolCall(TypedDict):
    id: NotRequired[str | None]
    type: NotRequired[Literal["function"]]
    function: ToolCallFunction


def _content_where_required(message: dict[str, Any]) -> dict[str, Any]:
    role = message["role"]
    if role in ("system", "developer", "user") and message.get("content") is None:
        raise ValueError(f"a {role!r} message needs `content`")
    if role == "tool" and not message.get("tool_call_id"):
        raise ValueError("a 'tool' message needs `tool_call_id`")
    return message


@with_config(_OPEN)
class ChatMessage(TypedDict):
    """One message. `content` is text or a list of content parts (text, image_url, ...)."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: NotRequired[str | list[dict[str, Any]] | None]
    name: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCall] | None]
    tool_call_id: NotRequired[str | None]


_CheckedMessage = Annotated[ChatMessage, AfterValidator(_content_where_required)]


@with_config(_OPEN)
class FunctionDefinition(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


@with_config(_OPEN)
class Tool(TypedDict):
    type: NotRequired[Literal["function"]]
    function: FunctionDefinition


@with_config(_OPEN)
class NamedFunction(TypedDict):
    name: str


@with_config(_OPEN)
class NamedToolChoice(TypedDict):
    type: NotRequired[Literal["function"]]
    function: NamedFunction


@with_config(_OPEN)
class JsonSchemaFormat(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: NotRequired[str | None]
    schema: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


def _schema_given(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_schema" and fmt.get("json_schema") is None:
        raise ValueError("response_format type 'json_schema' needs a `json_schema` object")
    return fmt


@with_config(_OPEN)
class ResponseFormat(TypedDict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: NotRequired[JsonSchemaFormat | None]


_CheckedFormat = Annotated[ResponseFormat, AfterValidator(_schema_given)]


@with_config(_OPEN)
class StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]


class MurakkabOptions(BaseModel):
    """The body field `murakkab`: the calling node's annotation and where it sits.

    The annotation keys are those of `murakkab_lg.Intent` (`intent`, `constraints` nested or flat,
    `expected_*`); `workflow` and `node` name a planned node; `deployment` pins a deployment.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str | None = None
    workflow: str | None = None
    node: str | None = None
    deployment: str | None = None
    constraints: Constraints | None = None
    min_quality: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    latency_slo_s: Annotated[float, Field(gt=0.0)] | None = None
    latency_stat: Literal["p50", "p95"] | None = None
    max_cost_usd: Annotated[float, Field(ge=0.0)] | None = None
    max_energy_j: Annotated[float, Field(gt=0.0)] | None = None
    expected_calls: Annotated[float, Field(gt=0.0)] | None = None
    expected_input_tokens: Annotated[int, Field(ge=0)] | None = None
    expected_output_tokens: Annotated[int, Field(ge=1)] | None = None


Stop = str | Annotated[list[str], Field(max_length=16)] | None


def _consistent(req: dict[str, Any]) -> dict[str, Any]:
    if req.get("stream_options") is not None and not req.get("stream"):
        raise ValueError("`stream_options` is only allowed with `stream: true`")
    choice = req.get("tool_choice")
    if isinstance(choice, dict):
        names = {t["function"]["name"] for t in req.get("tools") or []}
        if choice["function"]["name"] not in names:
            raise ValueError(f"tool_choice names function {choice['function']['name']!r}, which is not in `tools`")
    elif choice == "required" and not req.get("tools"):
        raise ValueError("tool_choice 'required' needs `tools`")
    return req


@with_config(_OPEN)
class ChatCompletionRequest(TypedDict):
    """POST /v1/chat/completions. Unknown fields are accepted and not forwarded (see module doc)."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[_CheckedMessage], Field(min_length=1)]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[Literal["none", "auto", "required"] | NamedToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[_CheckedFormat | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    max_completion_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    stop: NotRequired[Stop]
    temperature: NotRequired[Annotated[float, Field(ge=0.0, le=2.0)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0.0, le=1.0)] | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=128)] | None]
    seed: NotRequired[int | None]
    user: NotRequired[str | None]
    presence_penalty: NotRequired[Annotated[float, Field(ge=-2.0, le=2.0)] | None]
    frequency_penalty: NotRequired[Annotated[float, Field(ge=-2.0, le=2.0)] | None]
    logit_bias: NotRequired[dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=20)] | None]
    murakkab: NotRequired[MurakkabOptions | None]


# Validates a request (strict: no coercion), and returns it as the dict it was.
CHAT_REQUEST: TypeAdapter[ChatCompletionRequest] = TypeAdapter(
    Annotated[ChatCompletionRequest, AfterValidator(_consistent)])


def include_usage(request: dict[str, Any]) -> bool:
    """Did the client ask for the usage chunk (`stream_options.include_usage`)?"""
    return bool((request.get("stream_options") or {}).get("include_usage"))


# What reaches the engine: the OpenAI fields above, never `murakkab` or a client's extras.
FORWARDED_FIELDS = frozenset(ChatCompletionRequest.__annotations__) - {"murakkab", "stream_options"}
