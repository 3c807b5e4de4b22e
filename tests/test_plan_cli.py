"""`murakkab plan` end to end: a YAML file, a JSON file with several workflows, a real LangGraph graph."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from murakkab_lg.cli import main
from murakkab_lg.commands.plan import load_workflow_file
from murakkab_lg.errors import ConfigError

TRIAGE = """
name: triage
latency_slo_s: 6.0
nodes:
  classify: {intent: classify, min_quality: 0.6, expected_output_tokens: 4}
  extract: {intent: extract, min_quality: 0.7, expected_output_tokens: 64}
  answer: {intent: answer, expected_output_tokens: 128, expected_fanout: 4}
edges:
  - classify -> extract
  - [classify, answer]
  - extract -> answer
inventory:
  devices:
    - {id: gpu0, kind: H100, memory_gb: 80, gpu_index: 0}
    - {id: gpu1, kind: H100, memory_gb: 80, gpu_index: 1}
"""


def test_yaml_file_table_and_json(tmp_path, capsys):
    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE)
    out = tmp_path / "plan.json"
    assert main(["plan", str(wf), "--candidates", "published", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan 'triage': policy milp, objective energy" in text and "critical path classify ->" in text
    data = json.loads(out.read_text())
    assert data["workflow"] == "triage" and data["policy"] == "milp"
    assert [c["node"] for c in data["choices"]] == ["classify", "extract", "answer"]
    assert data["totals"]["latency_s"] <= 6.0 and data["totals"]["critical_path"][0] == "classify"
    # deployments pinned to GPUs the inventory lacks are rejected for capacity, with the reason
    reasons = {r["reason"] for c in data["choices"] for r in c["rejected"]}
    assert "capacity" in reasons
    assert all(d["placement"]["device"] == "H100" for d in data["deployments"])


def test_objective_switch_changes_totals(tmp_path, capsys):
    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE.replace("inventory:", "unused:"))
    got = {}
    for objective in ("energy", "latency"):
        assert main(["plan", str(wf), "--candidates", "published", "--objective", objective, "--json", "-"]) == 0
        got[objective] = json.loads(capsys.readouterr().out)["totals"]
    assert got["latency"]["latency_s"] <= got["energy"]["latency_s"]
    assert got["energy"]["energy_j"] <= got["latency"]["energy_j"]


def test_infeasible_prints_the_binding_constraint(tmp_path, capsys):
    wf = tmp_path / "hard.json"
    wf.write_text(json.dumps({"name": "hard", "nodes": [{"name": "extract", "intent": "extract",
                                                         "min_quality": 0.999}]}))
    assert main(["plan", str(wf), "--candidates", "published"]) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "node 'extract': min_quality 1.00, best available" in err and "To fix: relax min_quality" in err


def test_several_workflows_share_deployments(tmp_path, capsys):
    wf = tmp_path / "two.yaml"
    wf.write_text(textwrap.dedent("""
        workflows:
          - name: chat
            latency_slo_s: 5
            nodes: {answer: {intent: answer, min_quality: 0.6}}
          - name: docs
            latency_slo_s: 30
            nodes: {extract: extract, summarize: summarize}
            edges: [extract -> summarize]
        inventory:
          devices: [{id: gpu0, kind: H100, memory_gb: 80, gpu_index: 0}]
    """))
    assert main(["plan", str(wf), "--candidates", "published", "--json", "-"]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert [p["workflow"] for p in plans] == ["chat", "docs"]
    used = {d["name"] for p in plans for d in p["deployments"]}
    assert len(used) == 1  # one GPU: every node of both workflows on the one deployment that fits


def test_langgraph_module_target(tmp_path):
    (tmp_path / "mygraph.py").write_text(textwrap.dedent("""
        from typing import TypedDict
        from langgraph.graph import StateGraph, START, END

        class S(TypedDict):
            text: str

        def step(s):
            return {}

        g = StateGraph(S)
        g.add_node("classify", step, metadata={"murakkab": {"intent": "classify", "min_quality": 0.5}})
        g.add_node("answer", step, metadata={"murakkab": {"intent": "answer"}})
        g.add_edge(START, "classify")
        g.add_edge("classify", "answer")
        g.add_edge("answer", END)
        graph = g.compile()
    """))
    out = subprocess.run([sys.executable, "-m", "murakkab_lg.cli", "plan", "mygraph:graph", "--candidates",
                          "published", "--slo", "10", "--json", "-"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["workflow"] == "graph" and [c["node"] for c in data["choices"]] == ["classify", "answer"]
    assert data["totals"]["latency_slo_s"] == 10


def test_bad_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes: {a: {intent: nosuchintent}}\n")
    with pytest.raises(ConfigError, match="nosuchintent"):
        load_workflow_file(bad)
    bad.write_text("name: x\nnodes: {a: answer}\nedges: [a -> b]\n")
    with pytest.raises(ConfigError, match="unknown node 'b'"):
        load_workflow_file(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_workflow_file(bad)


def _no_gpu(monkeypatch):
    from murakkab_lg.backends.telemetry import inventory as inv_mod
    from murakkab_lg.spec import Device, Inventory

    cpu = Inventory(devices=(Device(id="cpu", kind="cpu", memory_gb=24.0, compute_units=2.0),))
    monkeypatch.setattr(inv_mod, "detect_inventory", lambda **_: (cpu, "no NVIDIA driver (test)"))


def test_default_plans_over_what_this_machine_runs(tmp_path, capsys, monkeypatch):
    """No inventory and no GPU here: only the embedded CPU rows, and the output says why."""
    _no_gpu(monkeypatch)
    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE.split("inventory:")[0].replace("latency_slo_s: 6.0", "latency_slo_s: 60.0"))
    assert main(["plan", str(wf), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["placement"]["device"] for d in data["deployments"]} == {"cpu"}
    seen = {data_c["deployment"] for data_c in data["choices"]} | {
        r["deployment"] for c in data["choices"] for r in c["rejected"]}
    assert not any("@" in name for name in seen)  # published rows are named model@gpu
    assert any("CPU deployments only" in n and "--candidates all" in n for n in data["notes"])


def test_default_with_gpus_plans_onto_those_kinds_only(tmp_path, capsys, monkeypatch):
    """GPUs in the inventory (the file's here; NVML's on a GPU machine): published rows for that
    kind join, rows for hardware the inventory lacks do not."""
    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE)
    assert main(["plan", str(wf), "--policy", "greedy", "--json", "-", "--top", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    seen = {c["deployment"] for c in data["choices"]} | {r["deployment"] for c in data["choices"]
                                                          for r in c["rejected"]}
    assert seen and all("@h100" in name for name in seen)  # the file's inventory: two H100s, no CPU


def test_a_plan_mixing_quality_sources_says_so(tmp_path, capsys):
    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE.split("inventory:")[0])
    assert main(["plan", str(wf), "--candidates", "all", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    [note] = [n for n in data["notes"] if "not one scale" in n]
    assert "model-card benchmarks for" in note and "in-house evals for" in note
    assert main(["plan", str(wf), "--candidates", "published", "--json", "-"]) == 0
    assert not [n for n in json.loads(capsys.readouterr().out)["notes"] if "not one scale" in n]


def test_a_factory_that_needs_arguments_gets_a_message_not_a_traceback(tmp_path):
    (tmp_path / "needsllm.py").write_text(textwrap.dedent("""
        def build_graph(llm, *, retries=2):
            raise AssertionError("must not be called")
    """))
    out = subprocess.run([sys.executable, "-m", "murakkab_lg.cli", "plan", "needsllm:build_graph"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    err = " ".join(out.stderr.split())
    assert "'needsllm:build_graph' is a function that needs arguments (llm)" in err
    assert "The target must be a LangGraph StateGraph or compiled graph" in err and "def graph():" in err


def test_plan_table_keeps_deployment_names_whole_at_80_columns(tmp_path, capsys):
    from rich.console import Console

    from murakkab_lg import explain
    from murakkab_lg.commands.plan import load_workflow_file

    wf = tmp_path / "triage.yaml"
    wf.write_text(TRIAGE)
    assert main(["plan", str(wf), "--candidates", "all", "--json", str(tmp_path / "p.json")]) == 0
    capsys.readouterr()
    from murakkab_lg.spec import Plan

    raw = json.loads((tmp_path / "p.json").read_text())
    plan = Plan.model_validate({k: v for k, v in raw.items() if k not in ("totals", "notes")})
    console = Console(width=80, record=True)
    explain.render(plan, load_workflow_file(wf)[0][0], console=console, top=3)
    lines = console.export_text().splitlines()
    table = lines[:next(i for i, line in enumerate(lines) if line.startswith("└"))]
    assert all(len(line) <= 80 for line in table)
    names = {c.deployment for c in plan.choices} | {r.deployment for c in plan.choices for r in c.rejected[:3]}
    assert len(max(names, key=len)) >= 25  # long published names, the ones that used to fold
    for name in names:
        assert any(name in line for line in table), name


def test_functional_api_target(tmp_path, capsys, monkeypatch):
    (tmp_path / "fnapp.py").write_text(textwrap.dedent("""
        from langgraph.func import entrypoint, task
        from murakkab_lg import annotate

        @task
        def classify(text):
            return text

        @task
        def answer(text):
            return text

        @entrypoint()
        def triage(text):
            label = classify(text).result()
            return answer(label).result()

        annotate(triage, {"classify": "classify", "answer": "answer"})
    """))
    monkeypatch.chdir(tmp_path)
    _no_gpu(monkeypatch)
    with pytest.warns(UserWarning, match="planned as a chain"):
        assert main(["plan", "fnapp:triage", "--slo", "60", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["node"] for c in data["choices"]] == ["triage/classify", "triage/answer"]
    assert data["totals"]["critical_path"] == ["triage/classify", "triage/answer"]


def test_errors_print_extras_verbatim(tmp_path, capsys, monkeypatch):
    """The CLI prints errors through rich; a fix naming `murakkab-lg[nvml]` must keep its extra."""
    from murakkab_lg.backends.telemetry import inventory as inv_mod
    from murakkab_lg.spec import Device, Inventory

    cpu = Inventory(devices=(Device(id="cpu", kind="cpu", memory_gb=24.0, compute_units=2.0),))
    monkeypatch.setattr(inv_mod, "detect_inventory",
                        lambda **_: (cpu, "To fix: `pip install 'murakkab-lg[nvml]'`"))
    wf = tmp_path / "hard.json"
    wf.write_text(json.dumps({"name": "hard", "nodes": [{"name": "x", "intent": "extract", "min_quality": 0.999}]}))
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["plan", str(wf)]) == 1
    err = capsys.readouterr().err
    assert "pip install 'murakkab-lg[nvml]'" in err and "--candidates all" in err
