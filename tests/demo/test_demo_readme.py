"""The README's demo tables are the kept run's figures (docs/demo_run.json), not a transcription
that drifts: every node row and every total is checked against the JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The demo, as measured")
    return text[start:text.index("\n## ", start + 3)]


def _spread(s: dict[str, float], fmt: str) -> str:
    return f"{s['median']:{fmt}} ({s['low']:{fmt}}-{s['high']:{fmt}})"


def test_readme_demo_tables_match_the_kept_json() -> None:
    run = json.loads((ROOT / "docs" / "demo_run.json").read_text())
    sec = _section()
    assert run["date"] in sec and "docs/demo_run.json" in sec
    assert ", ".join(run["order"]) in sec
    for policy in ("static", "planned"):
        for n in run[policy]["nodes"]:
            row = (f"| {policy} | {n['name']} | {n['model']} | {n['engine'].removeprefix('llamacpp ')} | "
                   f"{n['quality']:.2f} | {n['min_quality']:.2f} | {n['p50_s']:.2f} | {n['tokens']:,} | "
                   f"{n['energy_j']:,.0f} |")
            assert row in sec, row
        wall, energy = _spread(run[f"{policy}_wall_s"], ".1f"), _spread(run[f"{policy}_energy_j"], ",.0f")
        assert re.search(rf"\| {policy} [^|]*\| {re.escape(wall)} \| {re.escape(energy)} \|", sec), (policy, wall)
    assert f"**{run['speedup']:.2f}x** | **{run['energy_ratio']:.2f}x**" in sec
    assert ", ".join(f"{x:.2f}x" for x in run["pair_speedups"]) in sec
    assert ", ".join(f"{x:.2f}x" for x in run["pair_energy_ratios"]) in sec
