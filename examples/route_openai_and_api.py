"""Route one LangGraph graph between models you already have: two on an OpenAI-compatible server
you run (engine kind `openai`) and one hosted model through litellm (engine kind `api`).

The whole path a user takes, in one script:
1. a config file naming the three deployments (no engine is started by murakkab);
2. `murakkab profile --config` measures quality per intent, TTFT, latency and throughput of each,
   and takes the hosted model's price per token from litellm's bundled price map;
3. `Runtime.from_config` plans the graph with objective `cost`: each node goes to the cheapest
   deployment that meets its floor and SLO;
4. the wrapped graph runs; the report shows who served each node, and what it cost.

What stands in for what (this must run on a CPU machine with no key and no internet):
- "your server" is `murakkab_lg.testing.ScriptedServer`, a real HTTP server that serves two model
  names, `tiny-chat` and `small-chat`. Their strengths are scripted: tiny answers the classify
  eval items right, small also the extract items, and small is slower (an added 1 s a call).
  Point `base_url` at your vLLM / llama.cpp / Ollama server instead.
- "the hosted model" is litellm's real OpenAI client (`openai/gpt-4.1-mini`) sent to another
  scripted server via `api_base`; it answers every eval item right. Its price is gpt-4.1-mini's
  in litellm's map. Drop `api_base` and export OPENAI_API_KEY to call the real one.
So the quality figures below describe these scripts, not real models; the pipeline is the real one.

Run: .venv/bin/python examples/route_openai_and_api.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import yaml
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from rich.console import Console

from murakkab_lg import Runtime, wrap
from murakkab_lg.cli import main as murakkab
from murakkab_lg.evals import eval_set_names, get_eval_set
from murakkab_lg.testing.scripted_engine import RecordedRequest, ScriptedServer

INTENTS = ("classify", "extract", "answer")
KEY_ENV = "EXAMPLE_HOSTED_KEY"


# ---- the graph (ordinary LangGraph code; nodes annotated with intents and constraints) -------------
class State(TypedDict, total=False):
    ticket: str
    label: str
    fields: str
    reply: str


def build_graph(llm: Any) -> Any:
    def triage(state: State) -> State:
        return {"label": llm.invoke(f"Classify as billing, bug or other: {state['ticket']}").content}

    def fields(state: State) -> State:
        return {"fields": llm.invoke(f"Extract order_id and amount as JSON: {state['ticket']}").content}

    def reply(state: State) -> State:
        return {"reply": llm.invoke(f"Answer the customer in one sentence: {state['ticket']}").content}

    g = StateGraph(State)
    g.add_node("triage", triage, metadata={"murakkab": {"intent": "classify", "min_quality": 0.8,
                                                        "latency_slo_s": 1.5}})
    g.add_node("fields", fields, metadata={"murakkab": {"intent": "extract", "min_quality": 0.8}})
    g.add_node("reply", reply, metadata={"murakkab": {"intent": "answer", "min_quality": 0.8}})
    g.add_edge(START, "triage")
    g.add_edge("triage", "fields")
    g.add_edge("fields", "reply")
    g.add_edge("reply", END)
    return g.compile()


# ---- the stand-ins: scripted models of known strength ----------------------------------------------
def _references() -> dict[str, tuple[str, Any]]:
    """Eval prompt -> (intent, reference), to script which model answers which item right."""
    out = {}
    for name in eval_set_names():
        s = get_eval_set(name)
        if name.startswith("core.") and s.intent in INTENTS:
            for item in s.items:
                out[item.messages[-1]["content"]] = (s.intent, item.reference)
    return out


def scripted_models(strengths: dict[str, set[str]]) -> Any:
    refs = _references()

    def respond(req: RecordedRequest) -> str:
        intent, ref = refs.get(req.messages[-1].get("content") if req.messages else "", (None, None))
        if intent is None:  # the graph's own prompts and the load sweep
            return f"{req.model} says: noted."
        if intent not in strengths.get(str(req.model), set()):
            return "I am not sure."
        return json.dumps(ref) if not isinstance(ref, str) else ref

    return respond


# ---- the run ---------------------------------------------------------------------------------------
def write_config(workdir: Path, local_url: str, hosted_url: str) -> Path:
    cfg = {
        "deployments": [
            {"name": "local-tiny", "model": "tiny-chat",
             "engine": {"engine": "openai", "base_url": local_url, "served_model": "tiny-chat"}},
            {"name": "local-small", "model": "small-chat",
             "engine": {"engine": "openai", "base_url": local_url, "served_model": "small-chat"}},
            {"name": "hosted-mini", "model": "gpt-4.1-mini",
             "engine": {"engine": "api", "litellm_model": "openai/gpt-4.1-mini", "api_base": hosted_url,
                        "api_key_env": KEY_ENV}},
        ],
        "profiles": ["profiles.json"],
        "objective": "cost",
    }
    path = workdir / "murakkab.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(workdir: Path, console: Console | None = None) -> Any:
    """Profile, plan and run; returns the run report (the test reads it)."""
    console = console or Console()
    os.environ.setdefault(KEY_ENV, "sk-stand-in")
    local_models = scripted_models({"tiny-chat": {"classify"}, "small-chat": {"classify", "extract"}})
    hosted_model = scripted_models({"gpt-4.1-mini": set(INTENTS)})
    with ScriptedServer(local_models, name="your-server", models=("tiny-chat", "small-chat")) as local, \
            ScriptedServer(hosted_model, name="hosted-stand-in", models=("gpt-4.1-mini",)) as hosted:
        local.extra_delay_s["small-chat"] = 1.0
        config = write_config(workdir, local.url, hosted.url)
        rc = murakkab(["profile", "--config", str(config), "--quick", "--items", "4", "--concurrency", "1",
                       "--evals", *(f"core.{i}" for i in INTENTS)])
        if rc != 0:
            raise SystemExit(rc)
        with Runtime.from_config(config) as runtime:
            # The graph's own client points nowhere: every annotated call is routed by murakkab.
            llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-not-used", base_url="http://127.0.0.1:9/v1",
                             max_tokens=16, temperature=0)
            app = wrap(build_graph(llm), runtime=runtime)
            for c in app.murakkab_plan.choices:
                console.print(f"plan: {c.node} -> {c.deployment} (predicted cost ${c.prediction.cost_usd:.2e}; "
                              f"{c.reason})")
            app.invoke({"ticket": "Order 1234 was charged $30 twice."})
            report = app.last_report()
            console.print(report)
            console.print(f"run cost: ${report.cost_usd or 0:.2e} (litellm price map); energy of hosted calls: "
                          "unknown")
            return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, help="where the config and profile go (default: a temporary folder)")
    args = p.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp))


if __name__ == "__main__":
    main()
