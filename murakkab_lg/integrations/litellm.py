"""litellm without a server: `litellm.completion(model="murakkab/<intent>", ...)` in-process.

Why: some users already call litellm everywhere and want the runtime's routing without running
`murakkab serve`. `register(runtime)` installs a litellm `CustomLLM` under the provider name
`murakkab`; a call's model is `murakkab/<intent>` (planned onto a deployment) or
`murakkab/<deployment>` (pinned), and an optional `murakkab={...}` keyword carries the same
annotation as the server's body field (`intent`, constraints, `workflow`, `node`, `deployment`).

    import litellm
    from murakkab_lg import Runtime
    from murakkab_lg.integrations.litellm import register

    register(Runtime.embedded())
    litellm.completion(model="murakkab/classify", messages=[...], murakkab={"min_quality": 0.6})

With a server, use litellm's OpenAI provider instead (no registration):
`litellm.completion(model="openai/murakkab/classify", api_base="http://127.0.0.1:8000/v1",
extra_body={"murakkab": {...}})`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from murakkab_lg.backends.engines.api import OPENAI_CHAT_PARAMS
from murakkab_lg.errors import MurakkabError, RoutingError
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import Intent, known_intents
from murakkab_lg.wire import BODY_FIELD, Route, decode_route

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the bundled price map: importing never fetches it
try:
    import litellm
    from litellm import ModelResponse
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError
    from litellm.types.utils import GenericStreamingChunk
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("murakkab_lg.integrations.litellm needs litellm: pip install 'murakkab-lg[litellm]'") from e

__all__ = ("PROVIDER", "MurakkabLLM", "register", "route_for")

PROVIDER = "murakkab"
# OpenAI chat parameters forwarded to the engine (the api engine's list); everything else litellm passes stays here.
_FORWARD = OPENAI_CHAT_PARAMS


def route_for(runtime: Runtime, model: str, annotation: Mapping[str, Any] | None = None) -> Route:
    """The Route for `murakkab/<intent or deployment>` plus an optional annotation (the annotation
    wins), decoded by `wire.decode_route` like the server's requests."""

    def by_model(name: str) -> Route | None:
        name = name.removeprefix(PROVIDER + "/")
        if name in known_intents():
            return Route(intent=Intent(name))
        return Route(deployment=name) if name in runtime.deployments else None

    route = decode_route({"model": model, BODY_FIELD: dict(annotation or {})}, model_route=by_model)
    if route is None or route == Route():
        valid = [f"{PROVIDER}/{i}" for i in known_intents()] + [f"{PROVIDER}/{d}" for d in runtime.deployments]
        raise RoutingError(f"unknown model {model!r}; valid: {', '.join(valid)}")
    return route


def _body(messages: list[Any], params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": messages}
    body.update({k: params[k] for k in _FORWARD if params.get(k) is not None})
    return body


def _annotation(optional_params: Mapping[str, Any], litellm_params: Mapping[str, Any] | None) -> Any:
    for source in (optional_params, optional_params.get("extra_body") or {}, litellm_params or {}):
        if isinstance(source, Mapping) and source.get(PROVIDER) is not None:
            return source[PROVIDER]
    return None


def _chunk(data: Mapping[str, Any]) -> GenericStreamingChunk:
    usage = data.get("usage")
    out: GenericStreamingChunk = {"text": "", "is_finished": False, "finish_reason": "", "usage": None, "index": 0}
    if usage:
        out["usage"] = {"prompt_tokens": usage.get("prompt_tokens", 0),
                        "completion_tokens": usage.get("completion_tokens", 0),
                        "total_tokens": usage.get("total_tokens", 0)}
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        out["text"] = delta.get("content") or ""
        for tc in delta.get("tool_calls") or []:
            fn = tc.get("function") or {}
            out["tool_use"] = {"id": tc.get("id"), "type": "function", "index": tc.get("index", 0),
                               "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""}}
        if choice.get("finish_reason"):
            out["is_finished"] = True
            out["finish_reason"] = choice["finish_reason"]
    return out


class MurakkabLLM(CustomLLM):
    """A litellm provider whose calls go to `runtime` (complete, acomplete, stream, astream)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime

    def _prepare(self, model: str, messages: list[Any], optional_params: dict[str, Any],
                 litellm_params: dict[str, Any] | None) -> tuple[dict[str, Any], Route]:
        try:
            return _body(messages, optional_params), route_for(
                self.runtime, model, _annotation(optional_params, litellm_params))
        except (MurakkabError, ValueError) as e:
            raise CustomLLMError(status_code=404 if isinstance(e, RoutingError) else 400, message=str(e)) from e

    def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,  # type: ignore[override]
                   model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                   logging_obj: Any, optional_params: dict, acompletion: Any = None, litellm_params: Any = None,
                   logger_fn: Any = None, headers: Any = None, timeout: Any = None,
                   client: Any = None) -> ModelResponse:
        body, route = self._prepare(model, messages, optional_params, litellm_params)
        return ModelResponse(**self.runtime.complete(body, route))

    async def acompletion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,  # type: ignore[override]
                          model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                          logging_obj: Any, optional_params: dict, acompletion: Any = None,
                          litellm_params: Any = None, logger_fn: Any = None, headers: Any = None,
                          timeout: Any = None, client: Any = None) -> ModelResponse:
        body, route = self._prepare(model, messages, optional_params, litellm_params)
        return ModelResponse(**await self.runtime.acomplete(body, route))

    def streaming(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,  # type: ignore[override]
                  model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any, logging_obj: Any,
                  optional_params: dict, acompletion: Any = None, litellm_params: Any = None, logger_fn: Any = None,
                  headers: Any = None, timeout: Any = None, client: Any = None) -> Iterator[GenericStreamingChunk]:
        body, route = self._prepare(model, messages, optional_params, litellm_params)
        for data in self.runtime.stream(body, route):
            yield _chunk(data)

    async def astreaming(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,  # type: ignore[override]
                         model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                         logging_obj: Any, optional_params: dict, acompletion: Any = None, litellm_params: Any = None,
                         logger_fn: Any = None, headers: Any = None, timeout: Any = None,
                         client: Any = None) -> AsyncIterator[GenericStreamingChunk]:
        body, route = self._prepare(model, messages, optional_params, litellm_params)
        async for data in self.runtime.astream(body, route):
            yield _chunk(data)


def register(runtime: Runtime, provider: str = PROVIDER) -> MurakkabLLM:
    """Install (or replace) the `murakkab/...` provider in litellm for `runtime`; returns the handler."""
    handler = MurakkabLLM(runtime)
    litellm.custom_provider_map = [m for m in litellm.custom_provider_map if m.get("provider") != provider]
    litellm.custom_provider_map.append({"provider": provider, "custom_handler": handler})
    litellm.utils.custom_llm_setup()
    return handler
