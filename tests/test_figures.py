"""murakkab_lg.figures: the plan and run pictures, what they say, and the --png flags that write them."""

from __future__ import annotations

import sys

import pytest

from murakkab_lg.cli import main
from murakkab_lg.errors import ConfigError
from murakkab_lg.figures import levels, plan_figure, run_figure, save
from murakkab_lg.runtime.telemetry import CallRecord, summarize
from murakkab_lg.spec import (
    Deployment,
    Intent,
    LlamaCppSettings,
    NodeChoice,
    Objective,
    Plan,
    Prediction,
    Workflow,
    WorkflowNode,
)

PNG = b"\x89PNG\r\n\x1a\n"

WORKFLOW = Workflow(
    name="triage", latency_slo_s=9.0,
    nodes=(WorkflowNode(name="classify", intent=Intent("classify", min_quality=0.5)),
           WorkflowNode(name="extract", intent=Intent("extract", min_quality=0.7)),
           WorkflowNode(name="answer", intent=Intent("answer")),
           WorkflowNode(name="notify", intent=Intent("answer"))),
    edges=(("classify", "extract"), ("classify", "answer"), ("extract", "answer"), ("answer", "notify")),
)


def _choice(node: str, dep: str, q: float | None, lat: float, energy: float) -> NodeChoice:
    return NodeChoice(node=node, intent="x", deployment=dep, reason="test",
                      prediction=Prediction(quality=q, latency_s=lat, energy_j=energy))


PLAN = Plan(
    workflow="triage", policy="milp", objective=Objective.ENERGY,
    choices=(_choice("classify", "small", 0.57, 0.8, 5.5), _choice("extract", "small", 0.87, 1.9, 13.3),
             _choice("answer", "tiny", 0.79, 4.6, 16.6), _choice("notify", "tiny", None, 1.2, 4.5)),
    deployments=(Deployment(name="small", model="small", engine=LlamaCppSettings()),
                 Deployment(name="tiny", model="tiny", engine=LlamaCppSettings())),
)


def _texts(fig) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_levels_follow_the_longest_path():
    assert levels(WORKFLOW) == {"classify": 0, "extract": 1, "answer": 2, "notify": 3}
    cyclic = Workflow.model_construct(name="loop", nodes=WORKFLOW.nodes[:2],
                                      edges=(("classify", "extract"), ("extract", "classify")))
    with pytest.raises(ConfigError, match="cycle"):
        levels(cyclic)


def test_plan_figure_labels_each_node_with_deployment_quality_floor_latency_energy(tmp_path):
    fig = plan_figure(PLAN, WORKFLOW)
    texts = _texts(fig)
    assert "small\nquality 0.57 ≥ floor 0.50\n0.80 s · 5.5 J" in texts
    assert "tiny\nquality 0.79 (no floor)\n4.60 s · 16.6 J" in texts
    assert "tiny\nquality not measured\n1.20 s · 4.5 J" in texts
    (ax,) = fig.axes
    # critical path classify -> extract -> answer -> notify = 0.8 + 1.9 + 4.6 + 1.2
    assert "39.9 J, end-to-end 8.50 s (critical path), SLO 9 s" in ax.get_title()
    assert "topological level" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stage 1", "stage 2", "stage 3", "stage 4"]
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == 4  # one arrow per edge
    out = save(fig, tmp_path / "plan.png")
    assert out.read_bytes()[:8] == PNG


def test_plan_figure_marks_a_broken_floor_in_red():
    broken = PLAN.model_copy(update={"choices": (_choice("classify", "tiny", 0.2, 0.5, 1.0), *PLAN.choices[1:])})
    fig = plan_figure(broken, WORKFLOW)
    assert "tiny\nquality 0.20 < floor 0.50\n0.50 s · 1.0 J" in _texts(fig)
    edges = [p.get_edgecolor()[:3] for p in fig.axes[0].patches]
    assert edges.count((1.0, 0.0, 0.0)) == 1


def test_plan_figure_one_panel_per_plan_and_mismatch_is_an_error():
    assert len(plan_figure([PLAN, PLAN], [WORKFLOW, None]).axes) == 2
    with pytest.raises(ConfigError, match="2 plans but 3 workflows"):
        plan_figure([PLAN, PLAN], [WORKFLOW, WORKFLOW, WORKFLOW])


def _summaries(rows: list[tuple[str, str, float, float | None]]):  # type: ignore[no-untyped-def]
    return summarize(CallRecord(workflow="w", node=n, intent="x", deployment=d, model=d, started_at=0.0,
                                latency_s=lat, ttft_s=None, prompt_tokens=1, completion_tokens=1, energy_j=e,
                                energy_label="estimated" if e is not None else None) for n, d, lat, e in rows)


def test_run_figure_bars_are_the_summaries(tmp_path):
    static = _summaries([("a", "large", 2.0, 50.0), ("b", "large", 4.0, 90.0)])
    planned = _summaries([("a", "tiny", 0.5, 10.0), ("b", "large", 4.0, None)])
    fig = run_figure({"static": static, "planned": planned})
    ax_lat, ax_energy = fig.axes
    assert sorted(round(p.get_height(), 3) for p in ax_lat.patches) == [0.5, 2.0, 4.0, 4.0]
    assert sorted(p.get_height() for p in ax_energy.patches) == [10.0, 50.0, 90.0]  # no bar without a reading
    assert ax_lat.get_ylabel() == "p50 latency per call (s)"
    assert ax_energy.get_ylabel() == "energy, all calls of the run (J, estimated)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["static (bar 1)", "planned (bar 2)", "large", "tiny"]
    assert save(fig, tmp_path / "run.png").read_bytes()[:8] == PNG


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r"murakkab-lg\[plot\]"):
        plan_figure(PLAN, WORKFLOW)


def test_plan_cli_png(tmp_path, capsys):
    wf = tmp_path / "triage.yaml"
    wf.write_text("name: triage\nnodes:\n  classify: {intent: classify, min_quality: 0.5}\n"
                  "  answer: answer\nedges: [classify -> answer]\n")
    png = tmp_path / "plan.png"
    assert main(["plan", str(wf), "--candidates", "embedded", "--png", str(png)]) == 0
    assert "plan 'triage'" in capsys.readouterr().out
    assert png.read_bytes()[:8] == PNG
    assert main(["plan", str(wf), "--candidates", "embedded", "--png", str(tmp_path / "no" / "x.png")]) == 1
    assert "cannot write the figure" in capsys.readouterr().err


def test_run_figure_draws_the_demo_rows():
    # `murakkab demo --png` passes the demo's NodeResult rows (name/model instead of node/deployments)
    from murakkab_lg.demo.run import NodeResult

    def row(name: str, model: str, p50: float, energy: float) -> NodeResult:
        return NodeResult(name=name, intent="classify", model=model, engine="llamacpp", quality=0.9, min_quality=0.5,
                          quality_ok=True, p50_s=p50, calls=3, tokens=100, energy_j=energy, energy_label="estimated")

    fig = run_figure({"static": [row("sentiment", "large", 1.8, 53.0)],
                      "planned": [row("sentiment", "small", 0.9, 34.0)]})
    _, ax_energy = fig.axes
    assert [p.get_height() for p in ax_energy.patches] == [53.0, 34.0]
    assert [t.get_text() for t in fig.legends[0].get_texts()][2:] == ["large", "small"]
