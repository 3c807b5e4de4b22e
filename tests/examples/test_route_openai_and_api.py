"""The acceptance example runs end to end: profile three deployments of kinds openai and api from a
config file, plan the graph on cost, route each node to a different one, report the cost."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console

from murakkab_lg.catalog.profiles import read_profile_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "route_openai_and_api.py"


def test_example_routes_one_graph_across_openai_and_api_deployments(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("route_openai_and_api", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    report = example.run(tmp_path, Console(file=open(tmp_path / "out.txt", "w"), width=160))  # noqa: SIM115
    assert report.served() == {"triage": ("local-tiny",), "fields": ("local-small",), "reply": ("hosted-mini",)}
    rows = {p.deployment: p for p in read_profile_file(tmp_path / "profiles.json").profiles}
    assert set(rows) == {"local-tiny", "local-small", "hosted-mini"}
    assert all(p.provenance.kind == "measured" and p.energy_label == "unknown" for p in rows.values())
    assert rows["hosted-mini"].usd_per_output_token > 0 and rows["local-tiny"].usd_per_output_token == 0
    assert rows["local-tiny"].quality["classify"].score == 1.0 and rows["local-tiny"].quality["extract"].score == 0.0
    assert all(p.load[0].ttft_s is not None and p.load[0].throughput_tok_s > 0 for p in rows.values())
    assert rows["local-small"].load[0].ttft_s > rows["local-tiny"].load[0].ttft_s  # the scripted 1 s delay
    reply = report.node("reply")
    assert reply.cost_usd is not None and reply.cost_usd > 0 and report.cost_usd == reply.cost_usd
    assert reply.energy_j is None and reply.energy_label == "unknown"  # hosted energy is unknown, never 0
    assert report.node("triage").cost_usd is None
    assert "run cost" in (tmp_path / "out.txt").read_text()
