"""Request models of the OpenAI-compatible endpoint.

Why our own: the `openai` package's request types are TypedDicts for building calls, and they have
no room for our `murakkab` field (the node's annotation), so the server validates requests with the
small pydantic model below and reuses the `openai` package's *response* types for the OpenAPI
schema and for `/v1/models`.

Only the OpenAI chat fields listed in `ChatCompletionRequest` are forwarded to an engine. Anything
else a client sends is accepted and dropped (clients and SDKs add fields of their own), so a
request can never reach engine-specific settings (llama-server's slot ids or LoRA switches, vLLM's
extra sampling knobs): engine settings come from the operator's config only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from murakkab_lg.spec import Constraints

__all__ = (
    "FORWARDED_FIELDS",
    "ChatCompletionRequest",
    "ChatMessage",
    "MurakkabOptions",
    "ResponseFormat",
    "StreamOptions",
    "Tool",
)


class _Open(BaseModel):
    """Nested OpenAI objects: validate what we rely on, keep the rest for the engine."""

    model_config = ConfigDict(extra="allow")


class ToolCallFunction(_Open):
    name: str
    arguments: str = ""


class ToolCall(_Open):
    id: str | None = None
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Open):
    """One message. `content` is text or a list of content parts (text, image_url, ...)."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_where_required(self) -> ChatMessage:
        if self.role in ("system", "developer", "user") and self.content is None:
            raise ValueError(f"a {self.role!r} message needs `content`")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs `tool_call_id`")
        return self


class FunctionDefinition(_Open):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(_Open):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format type 'json_schema' needs a `json_schema` object")
        return self


class StreamOptions(_Open):
    include_usage: bool | None = None


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


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. Unknown fields are accepted and not forwarded (see module doc)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: Stop = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    murakkab: MurakkabOptions | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("`stream_options` is only allowed with `stream: true`")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names function {self.tool_choice.function.name!r}, which is not in `tools`"
                )
        elif self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs `tools`")
        return self

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# What reaches the engine: the OpenAI fields above, never `murakkab` or a client's extras.
FORWARDED_FIELDS = frozenset(ChatCompletionRequest.model_fields) - {"murakkab", "stream_options"}
