"""annotate(): node metadata on builders, compiled graphs and subgraph paths; errors that list choices."""

from __future__ import annotations

from typing import TypedDict

import pytest
from langgraph.graph import START, StateGraph

from murakkab_lg import Intent, annotate, wrap
from murakkab_lg.errors import ConfigError, UnknownIntentError
from murakkab_lg.integrations.langgraph import annotations_of, decode_route
from murakkab_lg.testing.scripted_engine import ScriptedServer, scripted_runtime
from murakkab_lg.wire import Route, route_fields, route_headers, route_model


class S(TypedDict):
    x: str


def _noop(state: S) -> dict:
    return {"x": state["x"]}


def _builder() -> StateGraph:
    inner = StateGraph(S)
    inner.add_node("summarize", _noop)
    inner.add_edge(START, "summarize")
    outer = StateGraph(S)
    outer.add_node("summarize", _noop)
    outer.add_node("research", inner.compile())
    outer.add_edge(START, "summarize")
    outer.add_edge("summarize", "research")
    return outer


def test_builder_annotation_is_node_metadata_and_survives_compile():
    b = annotate(_builder(), {"summarize": Intent("summarize", min_quality=0.7)})
    assert b.nodes["summarize"].metadata == {"murakkab": {"intent": "summarize",
                                                          "constraints": {"min_quality": 0.7}}}
    graph = b.compile()
    assert graph.nodes["summarize"].metadata["murakkab"]["intent"] == "summarize"
    assert annotations_of(graph) == {"summarize": Intent("summarize", min_quality=0.7)}


def test_compiled_graph_and_subgraph_path():
    graph = _builder().compile()
    annotate(graph, {"research/summarize": "summarize", "summarize": {"intent": "classify", "latency_slo_s": 1.5}})
    got = annotations_of(graph)
    assert got["research/summarize"] == Intent("summarize")
    assert got["summarize"].intent == "classify" and got["summarize"].latency_slo_s == 1.5


def test_add_node_metadata_form_is_read_as_is():
    g = StateGraph(S)
    g.add_node("extract", _noop, metadata={"murakkab": {"intent": "extract", "min_quality": 0.9}, "other": 1})
    g.add_edge(START, "extract")
    assert annotations_of(g.compile()) == {"extract": Intent("extract", min_quality=0.9)}


def test_unknown_node_lists_valid_paths():
    with pytest.raises(ConfigError, match=r"no node 'sumarize'.*valid node paths: summarize, research, "
                                          r"research/summarize"):
        annotate(_builder().compile(), {"sumarize": Intent("summarize")})


def test_unknown_intent_lists_known_intents():
    with pytest.raises(UnknownIntentError, match=r"node 'summarize': unknown intent 'summarise'.*known intents: "
                                                 r".*summarize"):
        annotate(_builder(), {"summarize": {"intent": "summarise"}})


@pytest.mark.parametrize(("annotation", "message"), [
    ({"intent": "classify", "min_quality": 0.8, "constraints": {"min_quality": 0.9}},
     "contradictory constraint min_quality"),
    ({"intent": "classify", "latency_stat": "p95"}, "latency_stat='p95' but no latency_slo_s"),
    ({"intent": "classify", "min_quality": 1.5}, r"constraints.min_quality: .*less than or equal to 1"),
    ({"intent": "classify", "min_qualty": 0.5}, r"unknown annotation key\(s\) min_qualty; valid intent fields"),
    ({"min_quality": 0.5}, "names no intent; known intents"),
    (42, "must be an Intent, an intent name or a dict"),
])
def test_bad_annotations_are_rejected_with_the_fix(annotation, message):
    b = _builder()
    with pytest.raises(ConfigError, match=message):
        annotate(b, {"summarize": annotation})
    assert b.nodes["summarize"].metadata is None  # nothing half-applied


def test_wrap_validates_add_node_annotations_up_front():
    g = StateGraph(S)
    g.add_node("extract", _noop, metadata={"murakkab": {"intent": "extract", "min_quality": 2}})
    g.add_edge(START, "extract")
    with ScriptedServer() as srv:
        rt = scripted_runtime(srv, {"d": {"extract": 0.9}})
        with pytest.raises(ConfigError, match="node 'extract'"):
            wrap(g.compile(), runtime=rt)
        with pytest.raises(ConfigError, match="needs a compiled graph"):
            wrap(g, runtime=rt)


def test_route_wire_format_round_trips():
    route = Route(workflow="wf", node="research/summarize", intent=Intent("summarize", min_quality=0.8))
    body = {"model": route_model(route), "murakkab": route_fields(route), "messages": []}
    assert body["model"] == "murakkab/summarize"
    assert route_headers(route) == {"X-Murakkab-Node": "research/summarize", "X-Murakkab-Intent": "summarize",
                                    "X-Murakkab-Workflow": "wf"}
    assert decode_route(body) == route
    assert decode_route({"model": "murakkab/classify"}, {"x-murakkab-node": "a%20b"}) == Route(
        node="a b", intent=Intent("classify"))
    assert decode_route({"model": "gpt-4o-mini"}) is None
