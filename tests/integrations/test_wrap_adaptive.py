"""wrap() with a run-time cascade: a real LangGraph graph, ChatOpenAI, a real scripted HTTP engine."""

from __future__ import annotations

import io
from typing import Any, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from rich.console import Console

from murakkab_lg import wrap
from murakkab_lg.testing.scripted_engine import Reply, ScriptedServer, scripted_runtime, synthetic_profile

PROFILES = {"small": synthetic_profile("small", quality={"extract": 0.6}, energy_per_output_token_j=0.01),
            "big": synthetic_profile("big", quality={"extract": 0.95}, energy_per_output_token_j=1.0)}


class State(TypedDict):
    ticket: str
    fields: str


def _answer(req: Any) -> Reply:
    # the small model manages JSON only for short tickets; the big one always does
    if req.model == "small" and "long" in req.text():
        return Reply.text("Sure! The order is 42.")
    return Reply.json({"order": 42})


def test_cascade_escalates_per_call_and_the_report_shows_the_rate():
    with ScriptedServer(_answer) as server, ScriptedServer(lambda r: Reply.text("provider"), name="p") as provider:
        llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=provider.url, max_tokens=32)

        def extract(state: State) -> dict:
            return {"fields": llm.invoke(f"extract the order from: {state['ticket']}").content}

        g = StateGraph(State)
        g.add_node("extract", extract, metadata={"murakkab": {"intent": "extract", "min_quality": 0.9,
                                                              "check": "json_object"}})
        g.add_edge(START, "extract")
        g.add_edge("extract", END)
        with scripted_runtime(server, PROFILES, policy="cascade") as rt:
            app = wrap(g.compile(), runtime=rt, name="tickets")
            assert app.murakkab_plan.choice("extract").escalation == ("big",)
            outs = [app.invoke({"ticket": t})["fields"] for t in ("short one", "a long one", "short", "long again")]
            assert outs == ['{"order": 42}'] * 4
            report = app.last_report()
            assert report.node("extract").escalation_rate == 1.0  # the last run escalated
            node = next(n for n in rt.status().nodes if n.node == "extract")
            assert node.escalation_rate == 0.5 and node.calls_per_run == 1.0
            assert node.deployments == {"small": 4, "big": 2}
            assert not provider.requests  # every call went to the runtime
        buf = io.StringIO()
        Console(file=buf, width=200).print(report.table())
        assert "escalated" in buf.getvalue() and "100%" in buf.getvalue()
