"""LangGraph's functional API (`@entrypoint` calling `@task`s): annotate by name, plan, route.

The graph, LangChain's ChatOpenAI, httpx and the Runtime are real; the deployments are the real
scripted HTTP engine (a model whose answer says which deployment served it; `engine`, `provider`
and `llm` come from this folder's conftest).
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from langgraph.func import entrypoint, task

from murakkab_lg import Intent, annotate, wrap
from murakkab_lg.errors import ConfigError
from murakkab_lg.integrations.langgraph.extract import StructureWarning, workflow_from_graph
from murakkab_lg.testing.scripted_engine import synthetic_profile

pytestmark = pytest.mark.timeout(120)

_INTENTS = ("classify", "answer", "summarize")
PROFILES = {"small": synthetic_profile("small", quality=dict.fromkeys(_INTENTS, 0.6), energy_per_output_token_j=0.05),
            "big": synthetic_profile("big", quality=dict.fromkeys(_INTENTS, 0.9), energy_per_output_token_j=0.2)}


def _triage(llm: Any) -> Any:
    """A fresh functional-API app: classify, then answer, then a plain step that calls the model."""

    @task
    def classify(text: str) -> str:
        return llm.invoke(f"label: {text}").content

    @task(name="reply")
    def answer(text: str, label: str) -> str:
        return llm.invoke(f"answer {label}: {text}").content

    @entrypoint()
    def triage(text: str) -> dict:
        label = classify(text).result()
        return {"label": label, "reply": answer(text, label).result(), "note": llm.invoke("note").content}

    return triage


def test_tasks_are_annotated_by_name_planned_and_routed(runtime, engine, provider, llm):
    app = _triage(llm)
    annotate(app, {"classify": Intent("classify", min_quality=0.8),  # only big qualifies
                   "reply": Intent("answer")})                       # cheapest: small
    with pytest.warns(StructureWarning, match="planned as a chain"):
        wrapped = wrap(app, runtime=runtime)
        plan = wrapped.murakkab_plan
    assert {c.node: c.deployment for c in plan.choices} == {"triage/classify": "big", "triage/reply": "small"}
    out = wrapped.invoke("my printer is on fire")
    assert out["label"] == "engine big" and out["reply"] == "engine small"
    assert out["note"] == "provider says hi"  # the entrypoint itself is not annotated: untouched
    assert wrapped.last_report().served() == {"triage/classify": ("big",), "triage/reply": ("small",)}
    assert [r.model for r in engine.requests] == ["big", "small"]
    (req,) = provider.requests
    assert "murakkab" not in req.body


def test_an_annotated_entrypoint_owns_the_calls_of_its_unannotated_tasks(runtime, engine, provider, llm):
    app = annotate(_triage(llm), {"triage": Intent("summarize", min_quality=0.8),
                                  "triage/classify": Intent("classify")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StructureWarning)
        wrapped = wrap(app, runtime=runtime)
        out = wrapped.invoke("hello")
    assert out == {"label": "engine small", "reply": "engine big", "note": "engine big"}
    assert wrapped.last_report().served() == {"triage/classify": ("small",), "triage": ("big",)}
    assert provider.requests == []


def test_unknown_structure_plans_as_a_chain_in_code_order(llm):
    app = annotate(_triage(llm), {"triage": "summarize", "classify": "classify", "reply": "answer"})
    with pytest.warns(StructureWarning, match="triage/classify, triage/reply"):
        wf = workflow_from_graph(app)
    assert [n.name for n in wf.nodes] == ["triage", "triage/classify", "triage/reply"]
    assert wf.edges == (("triage", "triage/classify"), ("triage/classify", "triage/reply"))


def test_annotate_names_the_valid_paths_of_a_functional_graph(llm):
    with pytest.raises(ConfigError, match="valid node paths: triage, triage/classify, triage/reply"):
        annotate(_triage(llm), {"nosuchtask": "classify"})


def test_a_single_task_plans_without_a_warning(runtime, engine, llm):
    @task
    def only(text: str) -> str:
        return llm.invoke(text).content

    @entrypoint()
    def one(text: str) -> str:
        return only(text).result()

    annotate(one, {"only": "classify"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", StructureWarning)
        wrapped = wrap(one, runtime=runtime)
        assert wrapped.invoke("x") == "engine small"
    assert [c.node for c in wrapped.murakkab_plan.choices] == ["one/only"]


async def test_async_tasks_run_in_parallel_are_routed(runtime, engine, provider, llm):
    @task
    async def label(text: str) -> str:
        return (await llm.ainvoke(text)).content

    @entrypoint()
    async def both(text: str) -> list[str]:
        return list(await asyncio.gather(label(text), label(text + "!")))

    annotate(both, {"label": Intent("classify", min_quality=0.8)})
    app = wrap(both, runtime=runtime)
    assert await app.ainvoke("x") == ["engine big", "engine big"]
    assert app.last_report().served() == {"both/label": ("big",)}
    assert provider.requests == []
