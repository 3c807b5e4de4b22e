"""Make an existing LangGraph app resource-aware without touching its code.

`build_app()` stands for code you did not write: a graph whose nodes call ChatOpenAI. We annotate
two of its nodes from the outside, wrap the compiled graph, and run it on the embedded CPU
ladder (llama-server with the tiny and small models). The third node (`chit_chat`) is left
unannotated: its call passes through to the model the author configured, untouched. Here that
address does not exist, so the example passes `default="answer"` to show the other option:
unannotated calls go to the runtime too.

Run: .venv/bin/python examples/wrap_existing_graph.py  (after `murakkab models pull`)
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from rich.console import Console

from murakkab_lg import Intent, Runtime, annotate, wrap
from murakkab_lg.testing.scripted_engine import synthetic_profile


# ---- the existing app (unchanged) ------------------------------------------------------------
class State(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]
    summary: str
    reply: str


def build_app():  # type: ignore[no-untyped-def]
    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-not-used", base_url="http://127.0.0.1:9/v1", max_tokens=24,
                     temperature=0)

    def fan_out(state: State) -> list[Send]:
        return [Send("take_note", {"topics": [t]}) for t in state["topics"]]

    def take_note(state: State) -> dict:
        return {"notes": [llm.invoke(f"One short fact about {state['topics'][0]}.").content]}

    def summarize(state: State) -> dict:
        return {"summary": llm.invoke("Summarize in one sentence: " + " ".join(state["notes"])).content}

    def chit_chat(state: State) -> dict:
        return {"reply": llm.invoke("Say hello in three words.").content}

    g = StateGraph(State)
    g.add_node("take_note", take_note)
    g.add_node("summarize", summarize)
    g.add_node("chit_chat", chit_chat)
    g.add_conditional_edges(START, fan_out, ["take_note"])
    g.add_edge("take_note", "summarize")
    g.add_edge("summarize", "chit_chat")
    g.add_edge("chit_chat", END)
    return g.compile()


# ---- what murakkab adds ----------------------------------------------------------------------
def main() -> None:
    console = Console()
    graph = annotate(build_app(), {
        "take_note": Intent("summarize", expected_fanout=3, expected_output_tokens=24),
        "summarize": Intent("summarize", min_quality=0.3, expected_output_tokens=24),
    })
    with Runtime.embedded(models=["tiny", "small"]) as runtime:
        if not any(d in runtime.profiles for d in runtime.deployments):
            # Planning needs profiles; until `murakkab profile` has measured this machine, use fixture
            # rows that say so in their provenance (tiny cheaper, small better).
            console.print("no CPU profile found (run `murakkab profile`); planning with synthetic fixture rows",
                          style="yellow")
            tiny, small = runtime.deployments
            runtime.profiles.add([synthetic_profile(tiny, quality={"summarize": 0.2, "answer": 0.2},
                                                    energy_per_output_token_j=0.05),
                                  synthetic_profile(small, quality={"summarize": 0.4, "answer": 0.4},
                                                    energy_per_output_token_j=0.2)], source="synthetic fixture")
        app = wrap(graph, runtime=runtime, default="answer")
        for choice in app.murakkab_plan.choices:
            console.print(f"plan: {choice.node} -> {choice.deployment} ({choice.reason})")
        out = app.invoke({"topics": ["tea", "rivers", "owls"], "notes": []})
        console.print(out["summary"], style="bold")
        console.print(app.last_report())


if __name__ == "__main__":
    main()
