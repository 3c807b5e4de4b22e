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
