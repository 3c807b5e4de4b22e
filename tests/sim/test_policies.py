"""The product's decisions drive the simulator: plans, the router baseline, the fleet, the CLI."""

from __future__ import annotations

import json

import pytest

from murakkab_lg.cli import main
from murakkab_lg.commands.plan import _candidates, load_workflow_file
from murakkab_lg.commands.simulate import resolve_workflow
from murakkab_lg.errors import ConfigError
from murakkab_lg.sim import Arrivals, PerRequestRouter, load_sim_spec, simulate
from murakkab_lg.sim.engine import rates_from_profile
from murakkab_lg.sim.fleet import build_fleet, replicas_for
from murakkab_lg.sim.workload import compile_workflow


@pytest.fixture(scope="module")
def h100():  # type: ignore[no-untyped-def]
    cands, _ = _candidates("published", [], [], None)
    return tuple(c for c in cands if c.deployment.placement.device == "H100")


def codegen():  # type: ignore[no-untyped-def]
    path = resolve_workflow("codegen")
    return load_workflow_file(path)[0][0], load_sim_spec(path)


def test_router_has_one_bar_per_intent(h100) -> None:  # type: ignore[no-untyped-def]
    wf, _ = codegen()
    assert PerRequestRouter.bars_for(wf) == {"code": 0.80}  # write 0.80 and fix 0.70 share the intent
    assign = PerRequestRouter(h100, PerRequestRouter.bars_for(wf), 4.916).assignment(wf)
    assert "70b" in assign["write"] and assign["write"] == assign["fix"]


def test_planner_and_router_and_static_on_codegen(h100) -> None:  # type: ignore[no-untyped-def]
    wf, spec = codegen()
    arr = Arrivals(rate_per_s=4.0, duration_s=120.0)
    res = {p: simulate(p, wf, h100, arr, sim=spec, seed=3)[0] for p in ("static", "router", "milp")}
    assert len(set(res["static"].assignment.values())) == 1
    assert "8b" in res["milp"].assignment["fix"]  # the plan sees the node's own, lower floor
    for r in res.values():
        assert r.completed == r.started > 0 and r.label == "simulated"
    assert res["milp"].energy_per_workflow_j < res["static"].energy_per_workflow_j


def test_fleet_honours_engine_settings(h100) -> None:  # type: ignore[no-untyped-def]
    wf, spec = codegen()
    t = compile_workflow(wf, spec)
    c70 = next(c for c in h100 if "3.3-70b" in c.name)
    small = c70.deployment.model_copy(update={"engine": c70.deployment.engine.model_copy(update={"max_num_seqs": 16})})
    assign = {n.name: c70.name for n in wf.nodes}
    fleet = build_fleet(t, assign, [small], {c70.name: c70.profile}, 2.0, target_concurrency=1000)
    d = fleet.deployments[0]
    assert d.rates.max_seqs == 16 and d.gpus_per_replica == 4 and fleet.gpus == 4 * d.replicas
    wrong_tp = small.model_copy(update={"engine": small.engine.model_copy(update={"tensor_parallel_size": 2})})
    with pytest.raises(ConfigError, match="no published row"):
        build_fleet(t, assign, [wrong_tp], {c70.name: c70.profile}, 2.0)


def test_replicas_for_is_the_fewest_that_fit(h100) -> None:  # type: ignore[no-untyped-def]
    rates = rates_from_profile(h100[0].profile, 256)
    load = [(50.0, 0, 300)]
    r = replicas_for(rates, load, 32.0)
    assert r >= 1 and replicas_for(rates, load, 1e9) <= r
    lam_s = 50.0 * 300 * rates.tpot_s[32]  # Little: at r replicas concurrency <= 32
    assert lam_s / r <= 32.0 + 1e-6


def test_simulate_command_writes_json_and_plots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.json"
    rc = main(["simulate", "video_qa", "--rate", "1,3", "--duration", "30", "--policies", "static,greedy",
               "--json", str(out), "--plot", str(tmp_path / "plots")])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {(d["policy"], d["rate_per_s"]) for d in data} == {(p, r) for p in ("static", "greedy") for r in (1, 3)}
    assert all(d["label"] == "simulated" for d in data)
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["cdf.png", "energy_vs_rate.png", "slo_vs_rate.png"]


def test_simulate_command_bad_input(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["simulate", "nope"]) == 1
    assert "shipped workflow" in capsys.readouterr().err
    assert main(["simulate", "codegen", "--rate", "0"]) == 1
    assert main(["simulate", "codegen", "--policies", "static,fancy"]) == 1


def test_fleet_must_fit_a_given_inventory(h100) -> None:  # type: ignore[no-untyped-def]
    from murakkab_lg.errors import PlanInfeasibleError
    from murakkab_lg.spec import Device, Inventory

    wf, spec = codegen()
    arr = Arrivals(rate_per_s=0.5, duration_s=30.0)

    def gpus(n: int) -> Inventory:
        return Inventory(devices=tuple(Device(id=f"gpu{i}", kind="H100", memory_gb=80, gpu_index=i) for i in range(n)))

    res, _ = simulate("milp", wf, h100, arr, sim=spec, inventory=gpus(8))
    assert res.gpus == 5  # 70B on 4 GPUs + 8B on 1
    with pytest.raises(PlanInfeasibleError, match="To fix"):
        simulate("milp", wf, h100, arr, sim=spec, inventory=gpus(4))


def test_adaptive_routes_with_the_runtime_control_functions(h100) -> None:  # type: ignore[no-untyped-def]
    wf, spec = codegen()
    tight = wf.model_copy(update={"latency_slo_s": 26.0})
    arr = Arrivals(kind="bursts", rate_per_s=6.0, duration_s=120.0, burst_factor=6.0, burst_every_s=30.0,
                   burst_len_s=5.0)
    res, out = simulate("adaptive", tight, h100, arr, sim=spec, seed=2)
    planned = set(res.assignment.values())
    warm = [d for d in out.deployments if d not in planned]
    assert warm, "the plan's first alternative runs warm"
    assert sum(out.deployments[d].output_tokens for d in warm) > 0  # control.choose spilled calls to it
    loose, _ = simulate("adaptive", wf, h100, Arrivals(rate_per_s=2.0, duration_s=60.0), sim=spec, seed=2)
    assert loose.completed == loose.started
