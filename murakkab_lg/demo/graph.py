"""The demo workflow: a real LangGraph ticket-triage graph with annotated nodes.

sentiment and extract run in parallel from START; decide needs the message (and waits for both);
reply drafts an answer from the extracted order id and the decided action. Each node asks for a
quality floor on its own intent; none names a model.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph

from murakkab_lg.demo import tasks
from murakkab_lg.spec import Intent

__all__ = ("ANNOTATIONS", "EDGES", "WORKFLOW_NAME", "TriageState", "build_graph")

WORKFLOW_NAME = "triage"

# Floors are the product owner's requirements per node; whether a model meets them is measured
# on the ticket set by `murakkab profile` and checked again on every demo run.
ANNOTATIONS: dict[str, Intent] = {
    "sentiment": Intent("triage.sentiment", min_quality=0.6, expected_input_tokens=110, expected_output_tokens=2),
    "extract": Intent("triage.extract", min_quality=0.9, expected_input_tokens=80, expected_output_tokens=22),
    "decide": Intent("triage.decide", min_quality=0.45, expected_input_tokens=190, expected_output_tokens=2),
    "reply": Intent("triage.reply", min_quality=0.5, expected_input_tokens=90, expected_output_tokens=40),
}
EDGES = (("sentiment", "decide"), ("extract", "decide"), ("decide", "reply"))


class TriageState(TypedDict, total=False):
    ticket: dict[str, Any]
    sentiment: str
    extracted: dict[str, Any]
    action: str
    reply: str


def _text(msg: Any) -> str:
    return msg.content if isinstance(msg.content, str) else str(msg.content)


def build_graph(llm: BaseChatModel) -> Any:
    """Compile the triage graph around `llm` (MurakkabChat, or any chat model for comparison)."""

    def sentiment(state: TriageState) -> TriageState:
        out = _text(llm.invoke(tasks.sentiment_messages(state["ticket"]), max_tokens=4))
        return {"sentiment": out.strip()}

    def extract(state: TriageState) -> TriageState:
        out = _text(llm.invoke(tasks.extract_messages(state["ticket"]), max_tokens=40,
                               response_format=tasks.EXTRACT_FORMAT))
        return {"extracted": {"raw": out, **tasks.parse_extract(out)}}

    def decide(state: TriageState) -> TriageState:
        out = _text(llm.invoke(tasks.decide_messages(state["ticket"]), max_tokens=4))
        return {"action": out.strip()}

    def reply(state: TriageState) -> TriageState:
        order_id = str(state["extracted"].get("order_id") or "your order")
        action = tasks.first_action(state["action"]) or "escalate"
        out = _text(llm.invoke(tasks.reply_messages(state["ticket"], order_id, action), max_tokens=48))
        return {"reply": out.strip()}

    g = StateGraph(TriageState)
    for name, fn in (("sentiment", sentiment), ("extract", extract), ("decide", decide), ("reply", reply)):
        g.add_node(name, fn, metadata={"murakkab": ANNOTATIONS[name].model_dump(exclude_defaults=True)})
    g.add_edge(START, "sentiment")
    g.add_edge(START, "extract")
    for src, dst in EDGES:
        g.add_edge(src, dst)
    g.add_edge("reply", END)
    return g.compile()
