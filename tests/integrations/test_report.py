"""RunReport rendering: a per-node table people can read (text, rich, HTML) with the raw records kept."""

from __future__ import annotations

import io

from rich.console import Console

from murakkab_lg.integrations.langgraph import RunReport
from murakkab_lg.runtime.telemetry import CallRecord


def _rec(node: str, dep: str, latency_s: float, energy_j: float | None, ok: bool = True) -> CallRecord:
    return CallRecord(workflow="w", node=node, intent="classify", deployment=dep, model=dep, started_at=0.0,
                      latency_s=latency_s, ttft_s=None, prompt_tokens=10, completion_tokens=5, energy_j=energy_j,
                      energy_label="estimated" if energy_j is not None else None, ok=ok,
                      error=None if ok else "EngineUnavailableError: down")


REPORT = RunReport.build("triage", 0.0, 1.25, [_rec("classify", "smollm2-135m", 0.2, 1.0),
                                               _rec("classify", "smollm2-135m", 0.4, 2.0),
                                               _rec("<b>x</b>", "qwen2.5-coder-0.5b", 1.0, None, ok=False)])


def test_print_gives_a_per_node_table_not_the_records():
    text = str(REPORT)
    lines = text.splitlines()
    assert lines[0] == "run of 'triage': 3 routed calls in 1.25 s, ok"
    row = next(line for line in lines if "classify" in line and "smollm2-135m" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["classify", "classify", "smollm2-135m", "2", "0", "0.300", "0.390", "20/10", "3.00 estimated", "-"]
    assert "n/a" in next(line for line in lines if "<b>x</b>" in line)
    assert lines[-1] == "total energy 3.00 J (estimated); raw call records: .records"
    assert "CallRecord(" not in text and "\x1b[" not in text  # no pydantic repr, no colour codes


def test_raw_records_stay_one_attribute_away():
    assert len(REPORT.records) == 3 and REPORT.records[2].error == "EngineUnavailableError: down"
    assert "CallRecord(" in repr(REPORT)


def test_rich_and_html_views_show_the_same_rows():
    console = Console(width=200, file=io.StringIO())
    console.print(REPORT)
    shown = console.file.getvalue()
    assert "smollm2-135m" in shown and "0.390" in shown
    html = REPORT._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 3  # header + two nodes
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # node names are escaped
    for cell in REPORT.rows()[0]:
        assert f">{cell}</td>" in html


def test_a_failed_run_says_so_in_the_title():
    failed = RunReport.build("triage", 0.0, 0.5, [], error=TimeoutError("engine did not answer"))
    assert str(failed).splitlines()[0] == "run of 'triage': 0 routed calls in 0.50 s, FAILED (TimeoutError: " \
                                          "engine did not answer)"
    assert "total energy n/a" in str(failed)


def test_replans_and_escalations_show_in_every_view():
    from murakkab_lg.runtime.control import ReplanEvent

    escalated = _rec("extract", "qwen2.5-coder-0.5b", 0.8, 1.0)._replace(escalated=True, check="fail")
    replan = ReplanEvent(workflow="triage", at=0.0, reasons=("extract: p50 2.1 s > slo 1.0 s",),
                         moved={"extract": ("smollm2-135m", "qwen2.5-coder-0.5b")})
    report = RunReport.build("triage", 0.0, 1.0, [escalated], replans=(replan,))
    assert report.columns()[-1] == ("escalated", "right") and report.rows()[0][-1] == "100%"
    text = str(report)
    assert "escalated" in text and "100%" in text
    assert "re-planned: extract: p50 2.1 s > slo 1.0 s (moved extract: smollm2-135m -> qwen2.5-coder-0.5b)" in text
    html = report._repr_html_()
    assert "<br>re-planned: extract" in html and html.count("<th ") == len(report.columns())
    assert "escalated" not in str(REPORT)  # no cascade, no column
