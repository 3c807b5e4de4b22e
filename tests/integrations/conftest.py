"""Scripted servers the wrap() tests share: the engine the runtime serves from, and a stand-in
for the user's own provider (calls that must not be routed land there)."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from murakkab_lg.testing.scripted_engine import Reply, ScriptedServer


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    """The engine says which deployment answered, so outputs show routing too."""
    with ScriptedServer(lambda req: Reply.text(f"engine {req.model}"), name="engine") as srv:
        yield srv


@pytest.fixture(scope="module")
def provider():  # type: ignore[no-untyped-def]
    """Stands in for the user's own LLM provider: calls that must NOT be routed land here."""
    with ScriptedServer(lambda r: Reply.text("provider says hi"), name="provider") as srv:
        yield srv


@pytest.fixture
def llm(provider):  # type: ignore[no-untyped-def]
    """The user's chat model, pointed at their own provider."""
    provider.clear()
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=provider.url, max_tokens=32, temperature=0)


@pytest.fixture
def runtime(engine, request):  # type: ignore[no-untyped-def]
    """A Runtime over the scripted engine, with the test module's `PROFILES` (synthetic rows)."""
    from murakkab_lg.testing.scripted_engine import scripted_runtime

    engine.clear()
    rt = scripted_runtime(engine, request.module.PROFILES)
    yield rt
    rt.close()
