"""Deployment -> adapter constructors, one per engine kind, referenced by the registry."""

from __future__ import annotations

from murakkab_lg.backends.engines.base import EngineAdapter
from murakkab_lg.spec import ApiSettings, Deployment, LlamaCppSettings, OpenAiServerSettings, VllmSettings


def llamacpp(deployment: Deployment, replica: int) -> EngineAdapter:
    from murakkab_lg.backends.engines.llamacpp import LlamaCppEngine

    assert isinstance(deployment.engine, LlamaCppSettings)
    return LlamaCppEngine(deployment.name, deployment.model, deployment.engine)


def vllm(deployment: Deployment, replica: int) -> EngineAdapter:
    from murakkab_lg.backends.engines.vllm import VllmEngine

    assert isinstance(deployment.engine, VllmSettings)
    return VllmEngine(deployment.name, deployment.model, deployment.engine, placement=deployment.placement,
                      replica=replica)


def openai(deployment: Deployment, replica: int) -> EngineAdapter:
    from murakkab_lg.backends.engines.openai_server import OpenAiServerEngine

    assert isinstance(deployment.engine, OpenAiServerSettings)
    return OpenAiServerEngine(deployment.name, deployment.engine)


def api(deployment: Deployment, replica: int) -> EngineAdapter:
    from murakkab_lg.backends.engines.api import ApiEngine

    assert isinstance(deployment.engine, ApiSettings)
    return ApiEngine(deployment.name, deployment.engine)
