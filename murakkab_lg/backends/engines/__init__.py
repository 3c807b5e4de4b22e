"""Engine adapters, created from a Deployment through a registry (no if-chain over names)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from murakkab_lg.backends.engines.base import EngineAdapter, FunctionEngine, HttpEngine
from murakkab_lg.errors import ConfigError
from murakkab_lg.spec import Deployment

__all__ = ("EngineAdapter", "FunctionEngine", "HttpEngine", "create_engine", "register_engine")

EngineFactory = Callable[[Deployment, int], EngineAdapter]

# engine kind -> "module:function(deployment, replica_index) -> EngineAdapter", imported lazily so
# that vllm or litellm are only imported when a plan actually uses them.
_REGISTRY: dict[str, str | EngineFactory] = {
    "llamacpp": "murakkab_lg.backends.engines.factories:llamacpp",
    "vllm": "murakkab_lg.backends.engines.factories:vllm",
    "openai": "murakkab_lg.backends.engines.factories:openai",  # an existing OpenAI-compatible server
    "api": "murakkab_lg.backends.engines.factories:api",  # a hosted model through litellm
}


def register_engine(kind: str, factory: str | EngineFactory) -> None:
    _REGISTRY[kind] = factory


def create_engine(deployment: Deployment, replica: int = 0) -> EngineAdapter:
    kind = deployment.engine.engine
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        raise ConfigError(
            f"deployment {deployment.name!r}: no adapter for engine {kind!r}; "
            f"available: {', '.join(sorted(_REGISTRY))}"
        ) from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _REGISTRY[kind] = factory
    return factory(deployment, replica)
