"""Real llama-server engines inside Ray actors serve a wrapped LangGraph graph.

The runtime is the ordinary one with `RayBackend` as its engine factory: each replica is an actor
in its own placement group on the local test cluster, and requests go over HTTP to the URL the
actor reports (the node's IP, not loopback). The profiles are synthetic fixtures (tiny cheaper,
small better) so which node lands where is known; serving, tokens and estimated energy are real.
"""

from __future__ import annotations

import os
import time
from typing import TypedDict

import pytest
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from murakkab_lg import Runtime, wrap
from murakkab_lg.backends.ray import RayBackend
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.spec import Deployment, LlamaCppSettings, Placement
from murakkab_lg.testing.scripted_engine import synthetic_profile
from murakkab_lg.wire import Route

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

TINY, SMALL = "smollm2-135m", "qwen2.5-coder-0.5b"
_LEAN = LlamaCppSettings(threads=1, parallel=1, ctx_size=1024)  # 1 CPU each: the cluster has 4 logical


def _dep(model: str, *, name: str | None = None, host: str = "localhost") -> Deployment:
    return Deployment(name=name or model, model=model, engine=_LEAN, placement=Placement(host=host))


@pytest.fixture(scope="module")
def backend(ray_config):
    return RayBackend(ray_config)


@pytest.fixture(scope="module")
def runtime(backend, tiny_model, small_model):
    store = ProfileStore([
        synthetic_profile(TINY, quality={"summarize": 0.5, "answer": 0.5}, energy_per_output_token_j=0.05),
        synthetic_profile(SMALL, quality={"summarize": 0.85, "answer": 0.85}, energy_per_output_token_j=0.2),
    ], source="synthetic fixture (tests)")
    rt = Runtime([_dep(TINY), _dep(SMALL), _dep(TINY, name="tiny@node-b", host="node-b")], store,
                 engine_factory=backend)
    yield rt
    rt.close()


class State(TypedDict):
    topic: str
    draft: str
    answer: str


def _graph(llm: ChatOpenAI, after_draft=lambda: None):
    def draft(state: State) -> dict:
        out = llm.invoke(f"One sentence about {state['topic']}.").content
        after_draft()
        return {"draft": out}

    def review(state: State) -> dict:
        return {"answer": llm.invoke(f"Improve: {state['draft']}").content}

    g = StateGraph(State)
    g.add_node("draft", draft, metadata={"murakkab": {"intent": "summarize"}})
    g.add_node("review", review, metadata={"murakkab": {"intent": "answer", "min_quality": 0.8}})
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_edge("review", END)
    return g.compile()


@pytest.fixture
def llm():
    # the user's model, pointed where nothing listens: a call that escaped interception fails loudly
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_tokens=12,
                      temperature=0, max_retries=0)


def _gone(pid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_wrapped_graph_is_served_by_engines_in_ray_actors(runtime, backend, llm):
    app = wrap(_graph(llm), runtime=runtime)
    out = app.invoke({"topic": "rain"})
    assert out["draft"].strip() and out["answer"].strip()
    assert app.last_report().served() == {"draft": (TINY,), "review": (SMALL,)}
    for name in (TINY, SMALL):
        engine = backend.engines[(name, 0)]
        assert engine.healthy() and engine.node_id
        assert engine.base_url.startswith(f"http://{engine.node_address}:") and "127.0.0.1" not in engine.base_url
    records = [r for r in runtime.telemetry.records() if r.workflow == app.murakkab_workflow.name]
    assert {r.deployment for r in records} == {TINY, SMALL} and all(r.ok for r in records)
    assert all(r.completion_tokens > 0 and r.energy_j is not None and r.energy_label == "estimated" for r in records)


def test_killing_an_actor_mid_workflow_loses_no_call(runtime, backend, llm):
    import ray

    victim = backend.engines[(SMALL, 0)]
    old_actor, old_pid = victim.actor, victim.engine_pid
    killed = []

    def kill_review_engine() -> None:  # between the two nodes: the next call meets a dead replica
        ray.kill(victim.actor, no_restart=True)
        killed.append(time.monotonic())

    app = wrap(_graph(llm, after_draft=kill_review_engine), runtime=runtime)
    out = app.invoke({"topic": "bread"})
    assert killed and out["draft"].strip() and out["answer"].strip()
    review = [r for r in runtime.telemetry.records() if r.workflow == app.murakkab_workflow.name and r.node == "review"]
    assert [(r.ok, r.retries) for r in review] == [(False, 0), (True, 1)]  # failed on the dead one, then served
    assert victim.actor is not None and victim.actor != old_actor and victim.healthy()
    assert _gone(old_pid)  # the engine died with its actor (PDEATHSIG), no orphan


def test_deployment_lands_on_the_node_the_plan_asked_for(runtime, backend, node_b):
    body = {"model": "x", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    resp = runtime.complete(body, Route(deployment="tiny@node-b"))
    assert resp["choices"][0]["message"]["content"].strip()
    engine = backend.engines[("tiny@node-b", 0)]
    assert engine.node_id == node_b
    assert backend.engines[(TINY, 0)].node_id != node_b  # unpinned ones stayed on the head (it had room)


def test_replicas_are_actors_and_close_removes_actors_engines_and_placement_groups(backend, tiny_model):
    from ray.util import placement_group_table

    dep = _dep(TINY, name="two-replicas").model_copy(update={"replicas": 2})
    rt = Runtime([dep], ProfileStore(), engine_factory=backend)
    rt.start("two-replicas")
    engines = [backend.engines[("two-replicas", i)] for i in (0, 1)]
    assert engines[0].actor != engines[1].actor and engines[0].base_url != engines[1].base_url
    assert all(e.healthy() for e in engines)
    pids, groups = [e.engine_pid for e in engines], [e.placement_group.id.hex() for e in engines]
    rt.close()
    assert all(_gone(pid) for pid in pids) and not any(e.healthy() for e in engines)
    table = placement_group_table()
    assert [table[g]["state"] for g in groups] == ["REMOVED", "REMOVED"]
