"""The validation reads a `murakkab demo --json` result and predicts it from the CPU profile.

The mechanics are checked on one-node runs whose prediction is computable by hand: one ticket,
one call, so the simulated wall time is prefill + decode and the energy is power x that time.
The last test is the acceptance's "validation table within its bound": the kept demo run, the
shipped profile and the shipped probe, no engines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_profiles import PROV

from murakkab_lg.catalog.embedded import shipped_profiles
from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint
from murakkab_lg.demo.graph import ANNOTATIONS, EDGES, WORKFLOW_NAME
from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.validate import BOUND, PROBE_PATH, load_probe, node_settings, replay_as_demo, validate_demo
from murakkab_lg.spec import Intent, Workflow, WorkflowNode

ROOT = Path(__file__).resolve().parents[2]
ONE = Workflow(name="one", nodes=(
    WorkflowNode(name="n", intent=Intent("classify", expected_input_tokens=50, expected_output_tokens=4)),))


def prof(prefill: float = 100.0, tpot: float = 0.1, power: float = 10.0) -> DeploymentProfile:
    """Measured with 2 threads (every core of its 2-core machine); flat over concurrency."""
    return DeploymentProfile(
        deployment="m", model="m", engine="llamacpp", hardware="test, 2 cores", energy_label="estimated",
        provenance=PROV, load=tuple(LoadPoint(concurrency=c, prefill_tok_s=prefill, tpot_s=tpot,
                                              throughput_tok_s=c / tpot, power_w=power,
                                              energy_per_output_token_j=power * tpot / c) for c in (1, 4)))


def demo(node: dict) -> dict:  # type: ignore[type-arg]
    run = {"wall_s": 10.0, "energy_j": 100.0,
           "nodes": [{"name": "n", "model": "m", "p50_s": 10.0, "energy_j": 100.0, "calls": 1, **node}]}
    return {"items": 1, "concurrency": 1, "cores": 2, "static": run, "planned": run}


def probe(r_pre: float = 0.5, r_tpot: float = 1.25, r_pow: float = 0.5, cached_share: float = 0.0
          ) -> dict:  # type: ignore[type-arg]
    """A hand-made probe: 1-thread / 2-thread ratios and a replay's prompt-cache share."""
    def engine(pre: float, tpot: float, pw: float) -> dict:  # type: ignore[type-arg]
        point = {"prefill_tok_s": pre, "tpot_s": tpot, "power_w": pw}
        return {"load": {"1": point, "4": point}}
    replay = {"nodes": {"n": {"engine": "m@t1-np4", "cached_share": cached_share}}}
    return {"engines": {"m@t2-np4": engine(100.0, 0.1, 8.0),
                        "m@t1-np4": engine(100.0 * r_pre, 0.1 * r_tpot, 8.0 * r_pow)},
            "replay": {"static": replay, "planned": replay}}


def test_measured_tokens_drive_the_simulation() -> None:
    # 100 prompt tokens at 100 tok/s + 10 output tokens at 0.1 s = 2 s; 10 W x 2 s = 20 J
    got = validate_demo(demo({"threads": 2, "parallel": 4, "prompt_tokens": 100, "completion_tokens": 10}), ONE,
                        {"m": prof()}, host_cores=2)
    for check in got:
        assert check.tokens_source == "measured per node" and check.settings_source == "recorded"
        assert check.simulated_wall_s == pytest.approx(2.0)
        assert check.simulated_energy_j == pytest.approx(20.0)
        assert check.wall_error == pytest.approx((2.0 - 10.0) / 10.0)
        assert check.energy_error == pytest.approx((20.0 - 100.0) / 100.0)
        assert check.nodes[0].simulated_p50_s == pytest.approx(2.0) and check.nodes[0].calls == 1
        assert not check.within_bound


def test_old_json_falls_back_to_annotations_and_says_so() -> None:
    # no prompt/completion split: the annotation's 50 input and 4 output tokens, 0.5 + 0.4 s
    got = validate_demo(demo({"engine": "llamacpp t=2 np=4", "tokens": 999}), ONE, {"m": prof()}, host_cores=2)
    assert got[0].tokens_source.startswith("annotations") and got[0].settings_source == "engine label"
    assert got[0].simulated_wall_s == pytest.approx(0.9)


def test_threads_are_taken_from_the_run() -> None:
    # t=1: prefill at 100 x 0.5 tok/s, 0.1 x 1.25 s per token, 10 x 0.5 W -> 2 + 1.25 s, 5 W x 3.25 s
    node = {"engine": "llamacpp t=1 np=4", "prompt_tokens": 100, "completion_tokens": 10}
    got = validate_demo(demo(node), ONE, {"m": prof()}, host_cores=2, probe=probe())
    assert got[0].simulated_wall_s == pytest.approx(3.25)
    assert got[0].simulated_energy_j == pytest.approx(5.0 * 3.25)
    assert got[0].nodes[0].engine == "llamacpp t=1 np=4" and "thread ratios" in got[0].probe
    with pytest.raises(ConfigError, match="demo_probe"):  # no measured ratio: an error, not a guess
        validate_demo(demo(node), ONE, {"m": prof()}, host_cores=2)


def test_cached_prompt_tokens_are_not_prefilled() -> None:
    # 40% of 100 prompt tokens cached: 60 / 50 tok/s = 1.2 s; 10 tokens x 0.125 s = 1.25 s
    node = {"threads": 1, "parallel": 4, "prompt_tokens": 100, "completion_tokens": 10}
    got = validate_demo(demo(node), ONE, {"m": prof()}, host_cores=2, probe=probe(cached_share=0.4))
    n = got[0].nodes[0]
    assert (n.input_tokens, n.cached_tokens, n.output_tokens) == pytest.approx((100, 40, 10))
    assert got[0].simulated_wall_s == pytest.approx(1.2 + 1.25) and "prompt cache" in got[0].probe


def test_node_settings_sources() -> None:
    assert node_settings({"threads": 1, "parallel": 2, "engine": "llamacpp t=2 np=4"}, 2) == (1, 2, "recorded")
    assert node_settings({"engine": "llamacpp t=1 np=4"}, 2) == (1, 4, "engine label")
    assert node_settings({}, 2) == (2, 4, "default (not recorded)")


def test_validate_demo_names_a_missing_model_and_a_foreign_node() -> None:
    with pytest.raises(ConfigError, match="'m'"):
        validate_demo(demo({}), ONE, {}, host_cores=2)
    other = demo({"threads": 2, "parallel": 4})
    other["static"]["nodes"][0]["name"] = "zzz"
    with pytest.raises(ConfigError, match="'zzz' is not in workflow 'one'"):
        validate_demo(other, ONE, {"m": prof()}, host_cores=2)


def test_kept_demo_run_validates_within_the_bound() -> None:
    """The acceptance: docs/demo_run.json predicted from the shipped profile within 15% (wall and
    energy, both runs), with the threads and tokens the run recorded and the shipped probe."""
    kept = json.loads((ROOT / "docs" / "demo_run.json").read_text())
    wf = Workflow(name=WORKFLOW_NAME, edges=EDGES,
                  nodes=tuple(WorkflowNode(name=n, intent=i) for n, i in ANNOTATIONS.items()))
    profiles = {p.deployment: p for p in shipped_profiles() if p.deployment == p.model}
    checks = validate_demo(kept, wf, profiles, host_cores=2, probe=load_probe(PROBE_PATH))
    for c in checks:
        assert c.tokens_source == "measured per node" and c.settings_source == "recorded"
        assert "prompt cache" in c.probe and ("thread ratios" in c.probe) == (c.run == "planned")
        assert {n.node: n.calls for n in c.nodes} == {n: kept["items"] for n in ANNOTATIONS}
        assert abs(c.wall_error) <= BOUND and abs(c.energy_error) <= BOUND, c


def test_probe_replay_validates_within_the_bound() -> None:
    """The engine model alone: the shipped probe's replay of the demo's requests (no LangGraph or
    runtime on the cores) predicted the same way, totals within 15%."""
    probe = load_probe(PROBE_PATH)
    assert probe is not None
    wf = Workflow(name=WORKFLOW_NAME, edges=EDGES,
                  nodes=tuple(WorkflowNode(name=n, intent=i) for n, i in ANNOTATIONS.items()))
    profiles = {p.deployment: p for p in shipped_profiles() if p.deployment == p.model}
    replay = replay_as_demo(probe, probe["replay_items"], probe["replay_concurrency"], probe["cores"])
    for c in validate_demo(replay, wf, profiles, host_cores=2, probe=probe):
        assert {n.node: n.calls for n in c.nodes} == {n: probe["replay_items"] for n in ANNOTATIONS}
        assert abs(c.wall_error) <= BOUND and abs(c.energy_error) <= BOUND, c
