"""The simulated replica on cases small enough to compute by hand."""

from __future__ import annotations

import pytest
from sim_profiles import profile

from murakkab_lg.catalog.profiles import DeploymentProfile
from murakkab_lg.sim.engine import Replica, Request, rates_from_profile
from murakkab_lg.sim.simulator import SimDeployment, Simulation
from murakkab_lg.sim.workload import Arrivals, compile_workflow
from murakkab_lg.spec import Intent, Workflow, WorkflowNode


def one_node(output_tokens: int = 10, input_tokens: int = 0, fanout: float = 1.0) -> Workflow:
    return Workflow(name="one", nodes=(WorkflowNode(name="a", intent=Intent(
        "answer", expected_output_tokens=output_tokens, expected_input_tokens=input_tokens,
        expected_fanout=fanout)),))


def run(prof: DeploymentProfile, max_seqs: int, arrivals: Arrivals, wf: Workflow | None = None, seed: int = 1,
        record: bool = False):  # type: ignore[no-untyped-def]
    dep = SimDeployment(name="d", rates=rates_from_profile(prof, max_seqs))
    sim = Simulation(compile_workflow(wf or one_node()), [dep], {"a": "d"}, seed=seed, record_latencies=record)
    return sim.run(arrivals)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    # one sequence at a time, deterministic service S = 10 tokens x 0.01 s = 0.1 s, Poisson arrivals 5/s:
    # rho = 0.5, P-K mean wait for M/D/1 = rho S / (2 (1 - rho)) = 0.05 s
    out = run(profile([(1, 0.01, 100.0)]), 1, Arrivals(rate_per_s=5.0, duration_s=4000.0))
    wait = out.completion_s.mean() - 0.1
    assert out.completed == out.started > 15_000
    assert wait == pytest.approx(0.05, rel=0.06)


def test_energy_is_power_times_busy_time() -> None:
    out = run(profile([(1, 0.01, 250.0)]), 1, Arrivals(rate_per_s=3.0, duration_s=500.0))
    busy = out.deployments["d"].busy_s
    assert busy == pytest.approx(out.completed * 0.1, rel=1e-6)  # each run holds the replica 0.1 s
    assert out.energy_j == pytest.approx(250.0 * busy, rel=1e-9)
    assert sum(n.energy_j for n in out.nodes.values()) == pytest.approx(out.energy_j, rel=1e-9)


def test_continuous_batching_shares_the_concurrency_speed() -> None:
    # two runs at t=0; alone a token takes 0.01 s, two at once 0.015 s each
    prof = profile([(1, 0.01, 100.0), (2, 0.015, 150.0)])
    both = run(prof, 2, Arrivals(kind="closed", clients=2, total=2), record=True)
    assert sorted(both.completion_s) == pytest.approx([0.15, 0.15])  # batched: 10 x 0.015 each
    serial = run(prof, 1, Arrivals(kind="closed", clients=2, total=2))
    assert sorted(serial.completion_s) == pytest.approx([0.1, 0.2])  # max_seqs 1: the second waits
    assert both.energy_j == pytest.approx(150.0 * 0.15)
    assert serial.energy_j == pytest.approx(100.0 * 0.2)


def test_prefill_then_decode() -> None:
    out = run(profile([(1, 0.01, 100.0)], prefill=1000.0), 1, Arrivals(kind="closed", clients=1, total=1),
              wf=one_node(output_tokens=10, input_tokens=500))
    assert out.completion_s[0] == pytest.approx(0.5 + 0.1)


def test_fanout_group_splits_when_slots_run_out() -> None:
    # 3 copies, 2 slots: two run together (0.015 s/token), the third after them alone (0.01 s/token)
    prof = profile([(1, 0.01, 100.0), (2, 0.015, 150.0)])
    out = run(prof, 2, Arrivals(kind="closed", clients=1, total=1), wf=one_node(fanout=3.0))
    assert out.completion_s[0] == pytest.approx(0.15 + 0.1)
    assert out.nodes["a"].calls == 3


def test_same_seed_same_run_other_seed_other_run() -> None:
    prof = profile([(1, 0.01, 100.0), (4, 0.02, 200.0)])
    a = run(prof, 4, Arrivals(rate_per_s=20.0, duration_s=100.0), seed=7)
    b = run(prof, 4, Arrivals(rate_per_s=20.0, duration_s=100.0), seed=7)
    c = run(prof, 4, Arrivals(rate_per_s=20.0, duration_s=100.0), seed=8)
    assert a.completed == b.completed and list(a.completion_s) == list(b.completion_s) and a.energy_j == b.energy_j
    assert list(a.completion_s) != list(c.completion_s)


def test_cold_start_delays_the_first_request() -> None:
    dep = SimDeployment(name="d", rates=rates_from_profile(profile([(1, 0.01, 100.0)]), 1), cold_start_s=30.0)
    out = Simulation(compile_workflow(one_node()), [dep], {"a": "d"}, seed=1).run(
        Arrivals(kind="closed", clients=1, total=2))
    assert list(out.completion_s) == pytest.approx([30.1, 0.1])  # the first waits for the engine, the next does not


def test_controller_scales_out_and_pays_the_cold_start() -> None:
    dep = SimDeployment(name="d", rates=rates_from_profile(profile([(1, 0.01, 100.0)]), 1), cold_start_s=5.0)
    ticks = []

    def controller(state):  # type: ignore[no-untyped-def]
        ticks.append(state.now_s)
        return {"d": 2 if state.queued["d"] > 5 else state.replicas["d"]}

    sim = Simulation(compile_workflow(one_node()), [dep], {"a": "d"}, seed=1, controller=controller,
                     control_interval_s=10.0)
    out = sim.run(Arrivals(rate_per_s=15.0, duration_s=100.0))  # 1.5x what one replica serves
    assert out.deployments["d"].replicas == 2 and ticks[0] == 10.0
    assert out.completed == out.started


def test_llamacpp_prompt_steps_stall_decoding() -> None:
    # serial prefill (llama.cpp on a CPU): A prefills 100 tokens at 100 tok/s (0-1 s) and decodes 5 of
    # its 10 tokens alone (0.1 s each, to 1.5 s); B's 50-token prompt then stalls A for 0.5 s; both
    # decode at 0.15 s per token: A's last 5 end at 2.75 s, B has 5 left, alone again: 3.25 s
    prof = profile([(1, 0.1, 100.0), (2, 0.15, 150.0)], prefill=100.0)
    rep = Replica(rates_from_profile(prof, 2, serial_prefill=True))
    a, b = Request(100, 10, 1, None), Request(50, 10, 1, None)
    done: dict[str, float] = {}

    def step_to(t_end: float) -> None:
        while (t := rep.next_event_s()) is not None and t <= t_end + 1e-12:
            rep.advance(t)
            for r in rep.pop_finished(t):
                done["a" if r is a else "b"] = t
        rep.advance(t_end)

    rep.submit(a, 0.0)
    step_to(1.5)
    rep.submit(b, 1.5)
    step_to(10.0)
    assert done == pytest.approx({"a": 2.75, "b": 3.25})
    # power: 100 W alone (0-1.5 s, 2.75-3.25 s), 150 W with two running (1.5-2.75 s)
    assert rep.energy_j == pytest.approx(100.0 * 2.0 + 150.0 * 1.25)
    # two prompts at once share the one-sequence prefill speed: 100 + 100 tokens at 50 tok/s each
    # (2 s), then both decode 10 tokens at 0.15 s (1.5 s)
    rep2 = Replica(rates_from_profile(prof, 2, serial_prefill=True))
    rep2.submit(Request(100, 10, 1, None), 0.0)
    rep2.submit(Request(100, 10, 1, None), 0.0)
    assert rep2.next_event_s() == pytest.approx(2.0)
    rep2.advance(2.0)
    assert rep2.pop_finished(2.0) == [] and rep2.prefilling == 0
    assert rep2.next_event_s() == pytest.approx(3.5)
