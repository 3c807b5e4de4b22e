"""Engine kind `api`: a hosted model (OpenAI, Anthropic, Gemini, ...) called through litellm.

litellm is an optional extra (`murakkab-lg[litellm]`), imported on first use with an error that
names it. Keys come from the environment as litellm reads them (`OPENAI_API_KEY`, ...) or from
the variable the deployment names in `api_key_env`. Prices come from litellm's *bundled* model
price map: `LITELLM_LOCAL_MODEL_COST_MAP=True` is set before litellm is imported, so looking up a
price never fetches the map over the network.

There is no process and no CPU meter: energy of a hosted call is unknown (None), never 0.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from murakkab_lg.backends.engines.base import Body, EngineAdapter
from murakkab_lg.errors import (
    ConfigError,
    EngineError,
    EngineNotFoundError,
    EngineRequestError,
    EngineStartError,
    EngineUnavailableError,
)
from murakkab_lg.spec import ApiSettings

__all__ = ("OPENAI_CHAT_PARAMS", "ApiEngine", "import_litellm", "litellm_price")

# The OpenAI chat parameters passed on to litellm; engine-specific extras (llama-server's
# `cache_prompt`, ...) are not, since a hosted provider would refuse them.
OPENAI_CHAT_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "user",
                      "tools", "tool_choice", "parallel_tool_calls", "response_format", "presence_penalty",
                      "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n")


def import_litellm() -> Any:
    """litellm, with its price map read from the bundled copy (never fetched)."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    try:
        import litellm
    except ImportError as e:
        raise EngineNotFoundError(
            "engine kind 'api' calls hosted models through litellm, which is not installed. "
            "To fix: pip install 'murakkab-lg[litellm]'.") from e
    return litellm


@functools.cache
def litellm_price(model: str) -> tuple[float, float] | None:
    """(USD per input token, USD per output token) from litellm's bundled price map; None if unpriced."""
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception for a model it does not know
        return None
    pin, pout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if pin is None or pout is None:
        return None
    return float(pin), float(pout)


def _errors() -> type[Exception]:
    import openai  # a litellm dependency: its exceptions are the base of litellm's

    return openai.APIError


def _mapped(name: str, e: Exception) -> EngineError:
    """litellm's exception -> ours: 4xx the request's fault (429 kept), 5xx or no answer unavailable."""
    import litellm

    if isinstance(e, litellm.Timeout | litellm.APIConnectionError):
        return EngineUnavailableError(f"engine {name!r}: the provider is unreachable ({type(e).__name__}: {e})")
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500:
        return EngineRequestError(f"engine {name!r} rejected the request ({status}): {e}", status_code=status,
                                  body=getattr(e, "message", str(e)))
    return EngineUnavailableError(f"engine {name!r} failed ({status}): {e}",
                                  status_code=status if isinstance(status, int) else None)


def _message(resp: Any) -> Body:
    data = resp.model_dump()
    for choice in data.get("choices") or []:
        msg = choice.get("message") or {}
        for key in [k for k, v in msg.items() if v is None and k != "content"]:
            del msg[key]
    return data


class ApiEngine(EngineAdapter):
    """One hosted model through litellm (`completion`/`acompletion`, streaming, tools, structured output)."""

    def __init__(self, name: str, settings: ApiSettings) -> None:
        self.name = name
        self.settings = settings
        self._started = False
        # No retries inside litellm or the openai SDK: the runtime decides where a failed call goes
        # (a 429 or 503 must reach it as such, at once, not after the SDK's own backoff).
        self._kwargs: dict[str, Any] = {"model": settings.litellm_model, "max_retries": 0, "num_retries": 0}
        if settings.api_base is not None:
            self._kwargs["api_base"] = settings.api_base
        if settings.mock_response is not None:
            self._kwargs["mock_response"] = settings.mock_response

    def start(self, timeout_s: float = 120.0) -> None:
        """Import litellm and check the key is there; no network call (a probe would cost money)."""
        litellm = import_litellm()
        s = self.settings
        if s.api_key_env:
            key = os.environ.get(s.api_key_env)
            if not key:
                raise ConfigError(f"deployment {self.name!r}: api_key_env {s.api_key_env!r} is not set. "
                                  f"To fix: export {s.api_key_env}=<your key>.")
            self._kwargs["api_key"] = key
        elif s.api_base is None and s.mock_response is None:
            missing = litellm.validate_environment(s.litellm_model).get("missing_keys") or []
            if missing:
                raise EngineStartError(
                    f"deployment {self.name!r}: litellm needs {', '.join(missing)} for {s.litellm_model!r}. "
                    f"To fix: export {missing[0]}=<your key>, or name another variable in api_key_env.")
        self._started = True

    def stop(self) -> None:
        self._started = False

    def healthy(self) -> bool:
        return self._started

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = litellm_price(self.settings.litellm_model)
        return None if price is None else prompt_tokens * price[0] + completion_tokens * price[1]

    def _args(self, body: Body, stream: bool) -> dict[str, Any]:
        if not isinstance(body.get("messages"), list):  # litellm would fail on it with an AttributeError
            raise EngineRequestError(f"engine {self.name!r} rejected the request (400): `messages` must be a list "
                                     "of messages", status_code=400, body=None)
        args = {k: body[k] for k in OPENAI_CHAT_PARAMS if body.get(k) is not None}
        args.update(self._kwargs, messages=body["messages"])
        if stream:
            args.update(stream=True, stream_options={"include_usage": True})
        return args

    def complete(self, body: Body) -> Body:
        litellm = import_litellm()
        try:
            return _message(litellm.completion(**self._args(body, False)))
        except _errors() as e:
            raise _mapped(self.name, e) from e

    async def acomplete(self, body: Body) -> Body:
        litellm = import_litellm()
        try:
            return _message(await litellm.acompletion(**self._args(body, False)))
        except _errors() as e:
            raise _mapped(self.name, e) from e

    def stream(self, body: Body) -> Iterator[Body]:
        litellm = import_litellm()
        try:
            chunks = litellm.completion(**self._args(body, True))
            try:
                for chunk in chunks:
                    yield chunk.model_dump(exclude_none=True)
            finally:
                chunks.close()  # a consumer that stopped early cancels the provider's stream
        except _errors() as e:
            raise _mapped(self.name, e) from e

    async def astream(self, body: Body) -> AsyncIterator[Body]:
        litellm = import_litellm()
        try:
            chunks = await litellm.acompletion(**self._args(body, True))
            try:
                async for chunk in chunks:
                    yield chunk.model_dump(exclude_none=True)
            finally:
                await chunks.aclose()
        except _errors() as e:
            raise _mapped(self.name, e) from e
