"""MurakkabChat: a LangChain chat model whose calls the runtime routes by the calling node.

Use it where you would use ChatOpenAI; inside a node annotated with `metadata={"murakkab": ...}`
the runtime serves the call with that node's planned deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from murakkab_lg.integrations.langgraph.intercept import route_from_metadata
from murakkab_lg.integrations.messages import ai_message, chunk_from_data, openai_tool_choice
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import Intent
from murakkab_lg.wire import Route

__all__ = ("MurakkabChat", "openai_tool_choice")

Body = dict[str, Any]


class MurakkabChat(BaseChatModel):
    """Chat model backed by a murakkab Runtime; routing comes from the calling node's annotation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runtime: Runtime
    workflow: str | None = None
    intent: Intent | None = None  # used when the call is not inside an annotated node
    deployment: str | None = None  # pin a deployment, bypassing planning
    temperature: float | None = 0.0
    max_tokens: int | None = None
    seed: int | None = None

    @property
    def _llm_type(self) -> str:
        return "murakkab"

    def _route(self, run_manager: Any) -> Route | None:
        meta = getattr(run_manager, "metadata", None) or {}
        route = route_from_metadata(meta, self.workflow)
        if route is None and (self.intent is not None or self.deployment is not None):
            route = Route(workflow=self.workflow, intent=self.intent)
        if self.deployment is not None:
            route = (route or Route()).model_copy(update={"deployment": self.deployment})
        return route

    def _body(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> Body:
        body: Body = {"messages": convert_to_openai_messages(messages)}
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if stop:
            body["stop"] = stop
        body.update(kwargs)
        return body

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Any | BaseTool], *, tool_choice: Any = None,
                   **kwargs: Any) -> Any:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = openai_tool_choice(tool_choice)
        return super().bind(tools=formatted, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        resp = self.runtime.complete(self._body(messages, stop, kwargs), self._route(run_manager))
        return ChatResult(generations=[ChatGeneration(message=ai_message(resp))])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        resp = await self.runtime.acomplete(self._body(messages, stop, kwargs), self._route(run_manager))
        return ChatResult(generations=[ChatGeneration(message=ai_message(resp))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for data in self.runtime.stream(self._body(messages, stop, kwargs), self._route(run_manager)):
            msg = chunk_from_data(data)
            if msg is None:
                continue
            gen = ChatGenerationChunk(message=msg)
            if run_manager and msg.content:
                run_manager.on_llm_new_token(msg.content, chunk=gen)
            yield gen

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for data in self.runtime.astream(self._body(messages, stop, kwargs), self._route(run_manager)):
            msg = chunk_from_data(data)
            if msg is None:
                continue
            gen = ChatGenerationChunk(message=msg)
            if run_manager and msg.content:
                await run_manager.on_llm_new_token(msg.content, chunk=gen)
            yield gen
