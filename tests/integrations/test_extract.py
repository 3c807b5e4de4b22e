"""Workflow extraction from real LangGraph graphs: edges, branches, Send, loops, subgraphs."""

from __future__ import annotations

import operator
import warnings
from typing import Annotated, Literal, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from murakkab_lg.errors import ConfigError
from murakkab_lg.integrations.langgraph.extract import LoopWarning, with_observed, workflow_from_graph
from murakkab_lg.policies._graph import dag_of
from murakkab_lg.policies._synthetic import synthetic_candidates
from murakkab_lg.policies.base import PlanningProblem
from murakkab_lg.policies.milp import MilpPolicy
from murakkab_lg.spec import Intent


class S(TypedDict):
    items: Annotated[list, operator.add]
    n: int


def step(state: S) -> dict:
    return {"items": [1]}


def ann(intent: str, **kw) -> dict:
    return {"murakkab": {"intent": intent, **kw}}


def _edges(wf) -> set[tuple[str, str]]:
    return set(wf.edges)


def test_conditional_edges_contribute_every_target():
    g = StateGraph(S)
    g.add_node("classify", step, metadata=ann("classify", min_quality=0.8))
    g.add_node("extract", step, metadata=ann("extract"))
    g.add_node("answer", step, metadata=ann("answer", expected_output_tokens=64))
    g.add_edge(START, "classify")
    g.add_conditional_edges("classify", lambda s: "extract", {"extract": "extract", "answer": "answer"})
    g.add_edge("extract", "answer")
    g.add_edge("answer", END)
    wf = workflow_from_graph(g.compile(), name="triage", latency_slo_s=3.0)
    assert [n.name for n in wf.nodes] == ["classify", "extract", "answer"] or {n.name for n in wf.nodes} == {
        "classify", "extract", "answer"}
    assert _edges(wf) == {("classify", "extract"), ("classify", "answer"), ("extract", "answer")}
    assert wf.node("classify").intent.min_quality == 0.8
    assert wf.node("answer").intent.expected_output_tokens == 64
    assert wf.name == "triage" and wf.latency_slo_s == 3.0


def test_literal_router_and_command_destinations():
    def route(state: S) -> Literal["a", "b"]:
        return "a"

    def jump(state: S) -> Command[Literal["b"]]:
        return Command(goto="b")

    g = StateGraph(S)
    g.add_node("r", step, metadata=ann("classify"))
    g.add_node("a", jump, metadata=ann("plan"))
    g.add_node("b", step, metadata=ann("answer"))
    g.add_edge(START, "r")
    g.add_conditional_edges("r", route)
    g.add_edge("b", END)
    assert _edges(workflow_from_graph(g)) == {("r", "a"), ("r", "b"), ("a", "b")}


def test_send_fanout_width_and_unknown_router():
    def fan(state: S) -> list[Send]:
        return [Send("summarize", {"items": [i]}) for i in range(3)]

    g = StateGraph(S)
    g.add_node("plan", step, metadata=ann("plan"))
    g.add_node("summarize", step, metadata=ann("summarize", expected_fanout=3))
    g.add_node("join", step, metadata=ann("answer"))
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", fan)  # no path map, no hint: any node may follow
    g.add_edge("summarize", "join")
    g.add_edge("join", END)
    wf = workflow_from_graph(g)
    assert ("plan", "summarize") in _edges(wf)
    assert wf.node("summarize").intent.expected_fanout == 3
    dag_of(wf)  # still a DAG: the edge back to plan itself was cut


def test_loop_gets_annotated_iterations_and_is_cut_to_a_dag():
    def more(state: S) -> Literal["tools", "__end__"]:
        return END

    g = StateGraph(S)
    g.add_node("agent", step, metadata=ann("reason", expected_iterations=4))
    g.add_node("tools", step)  # not an LLM node
    g.add_node("critic", step, metadata=ann("classify"))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", more)
    g.add_edge("tools", "critic")
    g.add_edge("critic", "agent")
    wf = workflow_from_graph(g.compile())
    assert wf.node("agent").intent.expected_iterations == 4
    assert wf.node("critic").intent.expected_iterations == 4  # same loop
    assert _edges(wf) == {("agent", "critic")}  # tools contracted, back edge critic->agent cut
    dag_of(wf)


def test_unannotated_loop_warns():
    g = StateGraph(S)
    g.add_node("a", step, metadata=ann("reason"))
    g.add_node("b", step, metadata=ann("classify"))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_conditional_edges("b", lambda s: "a", {"a": "a", "end": END})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wf = workflow_from_graph(g)
    assert any(issubclass(w.category, LoopWarning) and "expected_iterations" in str(w.message) for w in caught)
    assert wf.node("a").intent.expected_iterations == 1.0


def test_subgraphs_flatten_with_paths():
    sub = StateGraph(S)
    sub.add_node("search", step, metadata=ann("extract"))
    sub.add_node("summarize", step, metadata=ann("summarize"))
    sub.add_edge(START, "search")
    sub.add_edge("search", "summarize")
    sub.add_edge("summarize", END)
    g = StateGraph(S)
    g.add_node("plan", step, metadata=ann("plan"))
    g.add_node("research", sub.compile())
    g.add_node("write", step, metadata=ann("draft"))
    g.add_edge(START, "plan")
    g.add_edge("plan", "research")
    g.add_edge("research", "write")
    g.add_edge("write", END)
    for graph in (g, g.compile()):
        wf = workflow_from_graph(graph)
        assert {n.name for n in wf.nodes} == {"plan", "research/search", "research/summarize", "write"}
        assert _edges(wf) == {("plan", "research/search"), ("research/search", "research/summarize"),
                              ("research/summarize", "write")}


def test_default_intent_and_no_annotation_error():
    g = StateGraph(S)
    g.add_node("a", step)
    g.add_node("b", step)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    with pytest.raises(ConfigError, match="no annotated node"):
        workflow_from_graph(g)
    wf = workflow_from_graph(g, default=Intent("answer"))
    assert _edges(wf) == {("a", "b")}


def test_observed_replaces_expected_calls_and_tokens():
    g = StateGraph(S)
    g.add_node("a", step, metadata=ann("answer", expected_calls=1))
    g.add_edge(START, "a")
    wf = with_observed(workflow_from_graph(g), {"a": {"calls": 3, "input_tokens": 410.4, "output_tokens": 51}})
    it = wf.node("a").intent
    assert (it.expected_calls, it.expected_input_tokens, it.expected_output_tokens) == (3.0, 410, 51)


def test_extracted_graph_plans_with_milp():
    sub = StateGraph(S)
    sub.add_node("summarize", step, metadata=ann("summarize", expected_fanout=2))
    sub.add_edge(START, "summarize")
    g = StateGraph(S)
    g.add_node("classify", step, metadata=ann("classify", min_quality=0.4))
    g.add_node("research", sub.compile())
    g.add_node("answer", step, metadata=ann("answer", expected_iterations=2))
    g.add_edge(START, "classify")
    g.add_edge("classify", "research")
    g.add_edge("research", "answer")
    wf = workflow_from_graph(g, latency_slo_s=60.0)
    plan = MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(synthetic_candidates(6, 5))))
    assert {c.node for c in plan.choices} == {"classify", "research/summarize", "answer"}
