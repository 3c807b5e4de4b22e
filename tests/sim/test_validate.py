"""The validation hook reads a `murakkab demo --json` result and predicts it from the CPU profile."""

from __future__ import annotations

import pytest

from murakkab_lg.catalog.embedded import embedded_deployments, shipped_profiles
from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.validate import validate_demo
from murakkab_lg.spec import Intent, Workflow, WorkflowNode

# the demo's shape (murakkab_lg/demo/graph.py): two nodes in parallel, then two in a chain
WF = Workflow(name="triage", nodes=(
    WorkflowNode(name="sentiment", intent=Intent("classify", expected_input_tokens=110, expected_output_tokens=2)),
    WorkflowNode(name="extract", intent=Intent("extract", expected_input_tokens=80, expected_output_tokens=22)),
    WorkflowNode(name="decide", intent=Intent("classify", expected_input_tokens=190, expected_output_tokens=2)),
    WorkflowNode(name="reply", intent=Intent("draft", expected_input_tokens=90, expected_output_tokens=40)),
), edges=(("sentiment", "decide"), ("extract", "decide"), ("decide", "reply")))


def run(model: str, other: str | None = None) -> dict:  # type: ignore[type-arg]
    nodes = [{"name": n.name, "model": other if other and n.name == "decide" else model, "p50_s": 1.0,
              "energy_j": 10.0} for n in WF.nodes]
    return {"wall_s": 20.0, "energy_j": 40.0, "nodes": nodes}


def test_validate_demo_mirrors_the_run() -> None:
    demo = {"items": 8, "concurrency": 4, "static": run("qwen2.5-coder-1.5b"),
            "planned": run("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")}
    profiles = {p.deployment: p for p in shipped_profiles()}
    static, planned = validate_demo(demo, WF, embedded_deployments(), profiles, host_cores=2)
    for check in (static, planned):
        assert {n.node: n.calls for n in check.nodes} == {n.name: 8 for n in WF.nodes}
        assert check.wall_error == pytest.approx((check.simulated_wall_s - 20.0) / 20.0)
        assert check.energy_error == pytest.approx((check.simulated_energy_j - 40.0) / 40.0)
        assert sum(n.simulated_energy_j for n in check.nodes) == pytest.approx(check.simulated_energy_j, rel=1e-9)
        assert check.simulated_wall_s > 0
    assert static.within_bound == (abs(static.wall_error) <= 0.15 and abs(static.energy_error) <= 0.15)


def test_validate_demo_names_a_missing_model() -> None:
    demo = {"items": 2, "concurrency": 1, "static": run("no-such-model"), "planned": run("no-such-model")}
    with pytest.raises(ConfigError, match="no-such-model"):
        validate_demo(demo, WF, embedded_deployments(), {}, host_cores=2)
