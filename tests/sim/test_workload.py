"""Workflow DAGs in the simulator: fan-out and loop counts, fixed stages, arrivals, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sim_profiles import profile

from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.engine import rates_from_profile
from murakkab_lg.sim.simulator import SimDeployment, Simulation
from murakkab_lg.sim.workload import Arrivals, FixedStage, SimSpec, arrival_times, compile_workflow
from murakkab_lg.spec import Intent, Workflow, WorkflowNode

CHAIN = Workflow(name="chain", nodes=(
    WorkflowNode(name="a", intent=Intent("plan", expected_output_tokens=10)),
    WorkflowNode(name="b", intent=Intent("code", expected_output_tokens=20, expected_iterations=3.0,
                                         expected_fanout=2.0)),
), edges=(("a", "b"),))


def sim(wf: Workflow, spec: SimSpec | None = None, max_seqs: int = 8, seed: int = 0) -> Simulation:
    dep = SimDeployment(name="d", rates=rates_from_profile(profile([(1, 0.01, 100.0)]), max_seqs))
    return Simulation(compile_workflow(wf, spec), [dep], {n.name: "d" for n in wf.nodes}, seed=seed)


def test_loop_and_fanout_counts() -> None:
    out = sim(CHAIN).run(Arrivals(kind="closed", clients=1, total=5))
    assert out.completed == 5
    assert out.nodes["a"].calls == 5
    assert out.nodes["b"].calls == 5 * 3 * 2  # 3 iterations x 2 copies per run
    # one run alone: a = 10 tokens, then b three times (2 copies batched, 0.01 s/token at the only load point)
    assert out.completion_s[0] == pytest.approx(0.1 + 3 * 0.2)


def test_fractional_expectations_keep_their_mean() -> None:
    wf = Workflow(name="f", nodes=(WorkflowNode(name="a", intent=Intent("answer", expected_output_tokens=1,
                                                                         expected_iterations=1.5,
                                                                         expected_fanout=2.25)),))
    out = sim(wf, max_seqs=64).run(Arrivals(kind="closed", clients=4, total=4000))
    assert out.nodes["a"].calls / 4000 == pytest.approx(1.5 * 2.25, rel=0.03)


def test_fixed_stage_delays_its_successors() -> None:
    spec = SimSpec(fixed_stages={"prep": FixedStage(service_time_s=2.0, before=("a",))})
    out = sim(CHAIN, spec).run(Arrivals(kind="closed", clients=1, total=1))
    assert out.completion_s[0] == pytest.approx(2.0 + 0.1 + 0.6)
    assert out.nodes["prep"].calls == 0


def test_parallel_branches_join() -> None:
    wf = Workflow(name="j", nodes=(
        WorkflowNode(name="x", intent=Intent("answer", expected_output_tokens=10)),
        WorkflowNode(name="y", intent=Intent("answer", expected_output_tokens=30)),
        WorkflowNode(name="z", intent=Intent("answer", expected_output_tokens=5))),
        edges=(("x", "z"), ("y", "z")))
    out = sim(wf).run(Arrivals(kind="closed", clients=1, total=1))
    assert out.completion_s[0] == pytest.approx(0.3 + 0.05)  # x and y run at once, z waits for y


def test_bad_fixed_stage_and_cycle_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown node 'nope'"):
        compile_workflow(CHAIN, SimSpec(fixed_stages={"t": FixedStage(service_time_s=1, after=("nope",))}))
    with pytest.raises(ConfigError, match=r"cycle|loop"):
        compile_workflow(CHAIN, SimSpec(fixed_stages={"t": FixedStage(service_time_s=1, after=("b",), before=("a",))}))


def test_poisson_and_burst_rates() -> None:
    rng = np.random.default_rng(0)
    t = arrival_times(Arrivals(rate_per_s=10.0, duration_s=1000.0), rng)
    assert len(t) / 1000.0 == pytest.approx(10.0, rel=0.03)
    b = arrival_times(Arrivals(kind="bursts", rate_per_s=10.0, duration_s=6000.0, burst_factor=5.0,
                               burst_every_s=60.0, burst_len_s=10.0), rng)
    assert len(b) / 6000.0 == pytest.approx(10.0, rel=0.03)  # the mean rate is kept
    in_burst = np.count_nonzero((b % 60.0) < 10.0) / 10.0 / 100  # per second inside bursts
    assert in_burst == pytest.approx(5 * 10.0 / (50 / 60 + 5 * 10 / 60), rel=0.05)


def test_trace_arrivals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "trace.csv"
    f.write_text("time_s\n0.5\n0.1\n2.0\n")
    assert list(arrival_times(Arrivals(kind="trace", trace_csv=str(f)), np.random.default_rng(0))) == [0.1, 0.5, 2.0]
    (tmp_path / "bad.csv").write_text("t\n1\n")
    with pytest.raises(ConfigError, match="time_s"):
        arrival_times(Arrivals(kind="trace", trace_csv=str(tmp_path / "bad.csv")), np.random.default_rng(0))


def test_per_call_chooser_sees_live_state() -> None:
    wf = Workflow(name="c", nodes=(WorkflowNode(name="a", intent=Intent("answer", expected_output_tokens=10)),))
    deps = [SimDeployment(name=n, rates=rates_from_profile(profile([(1, 0.01, 100.0)]), 1)) for n in ("p", "q")]
    seen = []

    def spill(node, view):  # type: ignore[no-untyped-def]
        seen.append((view.inflight("p"), view.service("p")))
        return "p" if view.inflight("p") == 0 else "q"  # spill when the primary is busy

    out = Simulation(compile_workflow(wf), deps, spill, seed=0).run(Arrivals(kind="closed", clients=2, total=2))
    assert out.nodes["a"].calls == 2 and list(out.completion_s) == pytest.approx([0.1, 0.1])
    assert out.deployments["p"].busy_s == pytest.approx(0.1) and out.deployments["q"].busy_s == pytest.approx(0.1)
    assert seen[0] == (0, None) and seen[1][0] == 1
    out = Simulation(compile_workflow(wf), deps, spill, seed=0).run(Arrivals(kind="closed", clients=1, total=3))
    assert seen[-1] == (0, pytest.approx(0.1))  # service time: admission to completion, EWMA
