"""Acceptance (issue 11, failures) on real llama-server engines: a wrapped LangGraph graph keeps
answering while its engine is SIGKILLed over and over, and a deployment whose restart keeps
failing is cooled down (restarted a few times, not on every call) while its calls fall back.

The tiny deployment's binary is a real wrapper script around the bundled llama-server: while a
flag file exists it exits 1 at once, as a broken binary or model would; otherwise it execs the
real server. Profiles are synthetic fixtures (tiny cheaper, both meet the floor) so the plan
and its alternatives are known in advance; the engines, kills, restarts and answers are real.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import TypedDict

import pytest
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from murakkab_lg import Runtime, wrap
from murakkab_lg.backends.engines.llamacpp import LlamaCppEngine, find_llama_server
from murakkab_lg.catalog.embedded import embedded_deployments
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.spec import Deployment
from murakkab_lg.testing.scripted_engine import synthetic_profile

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("tiny_model", "small_model")]

TINY, SMALL = "smollm2-135m", "qwen2.5-coder-0.5b"
RUNS_WITH_KILLS, RUNS_BROKEN, KILL_EVERY_S = 75, 25, 2.0


def _wrapper(tmp: Path) -> tuple[Path, Path]:
    real = find_llama_server()
    flag = tmp / "broken"
    script = tmp / "llama-server"
    script.write_text(f"""#!/bin/sh
if [ -e "{flag}" ]; then echo "llama-server wrapper: broken for the test" >&2; exit 1; fi
LD_LIBRARY_PATH="{real.parent}:$LD_LIBRARY_PATH" exec "{real}" "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, flag


class State(TypedDict):
    text: str
    label: str
    reply: str


def _graph(llm: ChatOpenAI) -> StateGraph:
    def triage(state: State) -> dict:
        return {"label": llm.invoke(f"Label this: {state['text']}").content}

    def reply(state: State) -> dict:
        return {"reply": llm.invoke(f"Reply to: {state['text']}").content}

    g = StateGraph(State)
    g.add_node("triage", triage, metadata={"murakkab": {"intent": "classify", "min_quality": 0.6}})
    g.add_node("reply", reply, metadata={"murakkab": {"intent": "answer", "min_quality": 0.6}})
    g.add_edge(START, "triage")
    g.add_edge("triage", "reply")
    g.add_edge("reply", END)
    return g


def test_sigkilled_engine_over_100_workflow_runs_loses_no_run_and_a_failing_restart_is_cooled_down(
        tmp_path: Path) -> None:
    script, flag = _wrapper(tmp_path)

    def factory(dep: Deployment, replica: int) -> LlamaCppEngine:
        return LlamaCppEngine(dep.name, dep.model, dep.engine, binary=script if dep.name == TINY else None)  # type: ignore[arg-type]

    store = ProfileStore([
        synthetic_profile(TINY, quality={"classify": 0.7, "answer": 0.7}, energy_per_output_token_j=0.05),
        synthetic_profile(SMALL, quality={"classify": 0.85, "answer": 0.85}, energy_per_output_token_j=0.2),
    ], source="synthetic fixture (tests)")
    rt = Runtime(embedded_deployments(["tiny", "small"]), store, engine_factory=factory)
    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_tokens=4,
                     temperature=0, max_retries=0)
    app = wrap(_graph(llm).compile(), runtime=rt)
    kills = 0
    stop = threading.Event()

    def killer() -> None:  # SIGKILL tiny's llama-server whenever it is up, every KILL_EVERY_S
        nonlocal kills
        while not stop.wait(KILL_EVERY_S):
            for rep in rt._pool.replicas(TINY):
                proc = getattr(rep.engine, "process", None)
                if proc is not None and proc.alive() and not rep.restarting:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1

    reports, failed = [], []
    try:
        app.invoke({"text": "warm up", "label": "", "reply": ""})  # plans and starts both engines
        assert rt.plans and rt.plans[next(iter(rt.plans))].choice("triage").deployment == TINY
        t = threading.Thread(target=killer, daemon=True)
        t.start()
        t0 = time.monotonic()
        for i in range(RUNS_WITH_KILLS):
            try:
                app.invoke({"text": f"order {i} arrived late", "label": "", "reply": ""})
            except Exception as e:  # a failed run is what this test counts, not a crash of the test
                failed.append(f"run {i}: {type(e).__name__}: {e}")
            reports.append(app.last_report())
        phase1_s = time.monotonic() - t0
        stop.set()
        t.join(5)
        tiny = rt._pool.replicas(TINY)[0]
        restarts_before = tiny.restarts_done

        # Phase 2: tiny's binary is now broken, and it dies once more: every restart fails.
        flag.touch()
        os.kill(tiny.engine.process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        t1 = time.monotonic()
        for i in range(RUNS_BROKEN):
            try:
                app.invoke({"text": f"ticket {i} is urgent", "label": "", "reply": ""})
            except Exception as e:
                failed.append(f"broken run {i}: {type(e).__name__}: {e}")
            reports.append(app.last_report())
        phase2_s = time.monotonic() - t1
        broken_restarts = tiny.restarts_done - restarts_before
    finally:
        stop.set()
        rt.close()

    retries = sum(n.retries for r in reports for n in r.nodes)
    fallbacks = sum(n.fallbacks for r in reports for n in r.nodes)
    broken_calls = sum(n.calls for r in reports[RUNS_WITH_KILLS:] for n in r.nodes)
    print(f"\n{len(reports)} workflow runs, {len(failed)} failed; {kills} SIGKILLs in {phase1_s:.1f} s; "
          f"{retries} retried tries, {fallbacks} fallback calls; tiny restarts {restarts_before} while killed, "
          f"{broken_restarts} while broken ({broken_calls} tries in {phase2_s:.1f} s)")
    assert failed == []
    assert len(reports) == RUNS_WITH_KILLS + RUNS_BROKEN and all(r.ok for r in reports)
    assert kills >= 5 and restarts_before >= kills - 1  # every kill was noticed and repaired
    assert retries > 0 and fallbacks >= RUNS_BROKEN  # both visible in the run reports
    broken_nodes = [n for r in reports[RUNS_WITH_KILLS:] for n in r.nodes]
    assert all(n.deployments[-1] == SMALL for n in broken_nodes)  # served by the fallback
    # Cooled down: one restart per window (2 s, doubling), not one per call.
    windows = 1 + sum(1 for k in range(10) if sum(2.0 * 2 ** j for j in range(k + 1)) <= phase2_s)
    assert 1 <= broken_restarts <= windows < broken_calls
