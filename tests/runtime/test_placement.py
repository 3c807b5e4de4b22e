"""The GPU packer on fake inventories (1x H100, 8x H100, 2x A100 with MIG): memory, TP and MIG
constraints hold, small models share GPUs, and impossible plans fail with the reason and the fix."""

from __future__ import annotations

import random

import pytest

from murakkab_lg.backends.telemetry import inventory_from_telemetry
from murakkab_lg.backends.telemetry.fake import FakeGpu, FakeMig, FakeNvml
from murakkab_lg.backends.telemetry.nvml import NvmlTelemetry
from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.policies._capacity import needs
from murakkab_lg.policies._synthetic import synthetic_candidates, synthetic_inventory, synthetic_workflow
from murakkab_lg.policies.base import PlanningProblem
from murakkab_lg.policies.milp import MilpPolicy
from murakkab_lg.runtime.placement import PlacementPlan, place
from murakkab_lg.spec import Deployment, Inventory, LlamaCppSettings, Placement, VllmSettings

H100 = "NVIDIA H100 80GB HBM3"
CAP = 0.9


def _inv(fake: FakeNvml, host: str = "localhost") -> Inventory:
    return inventory_from_telemetry(NvmlTelemetry(fake), host=host, include_cpu=True)


def h100(n: int, host: str = "localhost") -> Inventory:
    return _inv(FakeNvml.fleet(H100, count=n, memory_gb=79.6), host)


def a100_mig() -> Inventory:
    """GPU 0 in MIG mode (one 3g.40gb, two 1g.10gb), GPU 1 whole."""
    return _inv(FakeNvml([
        FakeGpu("NVIDIA A100-SXM4-80GB", 79.25, 400.0,
                mig=[FakeMig("3g.40gb", 39.5), FakeMig("1g.10gb", 9.75), FakeMig("1g.10gb", 9.75)]),
        FakeGpu("NVIDIA A100-SXM4-80GB", 79.25, 400.0, mig_capable=True),
    ]))


def vllm(name: str, tp: int = 1, replicas: int = 1, device: str = "gpu") -> Deployment:
    return Deployment(name=name, model=f"org/{name}", engine=VllmSettings(tensor_parallel_size=tp),
                      placement=Placement(device=device), replicas=replicas)


def check_invariants(plan: PlacementPlan, inv: Inventory, needs: dict[str, float]) -> None:
    """What every placement must satisfy, whatever the packer's choices."""
    devices = {f"{d.host}:{d.id}": d for d in inv.devices}
    used: dict[str, float] = {}
    util: dict[str, float] = {}
    for r in plan.replicas:
        dep = plan.deployment(r.deployment)
        tp = dep.engine.tensor_parallel_size
        assert len(r.devices) == tp == len(set(r.devices))  # a TP group stays on one host (r.host)
        if tp > 1:
            assert all("/mig" not in d for d in r.devices)  # and on whole GPUs
        keys = [f"{r.host}:{d}" for d in r.devices]
        for d in keys:
            used[d] = used.get(d, 0.0) + needs[r.deployment] / tp
            util[d] = util.get(d, 0.0) + r.gpu_memory_utilization
            # vLLM may use utilization x device memory: it must cover this replica's need (to 1% rounding)
            mem = devices[d].memory_gb
            assert r.gpu_memory_utilization * mem >= needs[r.deployment] / tp - 0.01 * mem
        expected = ",".join(devices[d].uuid if "/mig" in d else str(devices[d].gpu_index) for d in keys)
        assert r.cuda_visible_devices == expected
        assert dep.placement.cuda_visible_devices[r.replica] == expected
    for d, gb in used.items():
        assert gb <= devices[d].memory_gb * CAP + 1e-6, d
        assert util[d] <= CAP + 1e-9, d
        assert plan.used_gb[d] == pytest.approx(gb)


def test_one_h100_colocates_small_models_with_proportional_shares() -> None:
    inv = h100(1)
    deps = [vllm("qwen-7b"), vllm("llama-8b"), vllm("phi-3")]
    needs = {"qwen-7b": 20.0, "llama-8b": 24.0, "phi-3": 10.0}
    plan = place(deps, inv, needs)
    check_invariants(plan, inv, needs)
    assert {r.cuda_visible_devices for r in plan.replicas} == {"0"}
    shares = {d.name: d.engine.gpu_memory_utilization for d in plan.deployments}
    total = sum(needs.values())
    for name, need in needs.items():  # the 10% headroom is kept, the rest split by need
        assert shares[name] == pytest.approx(CAP * need / total, abs=0.01)
    assert sum(shares.values()) <= CAP


def test_one_h100_alone_gets_the_whole_cap_and_refuses_what_cannot_fit() -> None:
    plan = place([vllm("llama-8b")], h100(1), {"llama-8b": 30.0})
    assert plan.deployment("llama-8b").engine.gpu_memory_utilization == CAP
    with pytest.raises(PlanInfeasibleError, match=r"largest gpu device offers 71\.6 GB.*To fix") as err:
        place([vllm("llama-70b")], h100(1), {"llama-70b": 140.0})
    assert err.value.constraint == "memory"
    with pytest.raises(PlanInfeasibleError, match=r"needs 2 whole GPUs on one host.*best host has 1"):
        place([vllm("llama-70b", tp=2)], h100(1), {"llama-70b": 140.0})
    with pytest.raises(PlanInfeasibleError, match=r"no device has that much left.*gpu0: 21\.6"):
        place([vllm("a"), vllm("b")], h100(1), {"a": 50.0, "b": 40.0})


def test_eight_h100_tp_groups_are_disjoint_and_small_models_avoid_them() -> None:
    inv = h100(8)
    deps = [vllm("llama-70b", tp=4, replicas=1), vllm("qwen-32b", tp=2), vllm("llama-8b", replicas=2),
            vllm("phi-3")]
    needs = {"llama-70b": 200.0, "qwen-32b": 90.0, "llama-8b": 24.0, "phi-3": 10.0}
    plan = place(deps, inv, needs)
    check_invariants(plan, inv, needs)
    tp4 = plan.replica("llama-70b")
    tp2 = plan.replica("qwen-32b")
    assert tp4.cuda_visible_devices == "0,1,2,3" and tp2.cuda_visible_devices == "4,5"
    small = [plan.replica("llama-8b", 0), plan.replica("llama-8b", 1), plan.replica("phi-3")]
    tp_gpus = set(tp4.gpus) | set(tp2.gpus)
    assert all(not set(r.gpus) & tp_gpus for r in small)  # GPUs 6 and 7 were free
    assert len({g for r in small for g in r.gpus}) <= 2  # best fit piles small models together
    assert plan.deployment("llama-70b").engine.gpu_memory_utilization == CAP


def test_eight_h100_full_tp8_then_nothing_else_fits() -> None:
    inv = h100(8)
    plan = place([vllm("llama-405b-fp8", tp=8)], inv, {"llama-405b-fp8": 560.0})
    assert plan.replica("llama-405b-fp8").cuda_visible_devices == "0,1,2,3,4,5,6,7"
    with pytest.raises(PlanInfeasibleError, match="needs 8 whole GPUs on one host"):
        place([vllm("llama-405b-fp8", tp=8), vllm("second", tp=8)], inv, {"llama-405b-fp8": 560.0, "second": 400.0})


def test_tp_group_never_spans_hosts() -> None:
    inv = Inventory(devices=h100(2, "node-a").devices + h100(2, "node-b").devices)
    plan = place([vllm("m", tp=2, replicas=2)], inv, {"m": 100.0})
    hosts = {r.host for r in plan.replicas}
    assert hosts == {"node-a", "node-b"}
    with pytest.raises(PlanInfeasibleError, match="on one host"):
        place([vllm("m", tp=4)], inv, {"m": 100.0})


def test_two_a100_with_mig_slices() -> None:
    inv = a100_mig()
    deps = [vllm("phi-3"), vllm("qwen-1.5b"), vllm("llama-8b"), vllm("qwen-32b")]
    needs = {"phi-3": 8.0, "qwen-1.5b": 6.0, "llama-8b": 30.0, "qwen-32b": 70.0}
    plan = place(deps, inv, needs)
    check_invariants(plan, inv, needs)
    # each small model takes the smallest slice that holds it (best fit), addressed by MIG UUID
    assert plan.replica("phi-3").devices[0].startswith("gpu0/mig1g.10gb")
    assert plan.replica("qwen-1.5b").devices[0].startswith("gpu0/mig1g.10gb")
    assert plan.replica("phi-3").cuda_visible_devices.startswith("MIG-")
    assert plan.replica("llama-8b").devices == ("gpu0/mig3g.40gb/0",)
    assert plan.replica("qwen-32b").cuda_visible_devices == "1"
    assert all(r.gpus[0] == (0 if "mig" in r.devices[0] else 1) for r in plan.replicas)
    with pytest.raises(PlanInfeasibleError, match=r"needs 2 whole GPUs on one host.*best host has 1"):
        place([vllm("qwen-32b", tp=2)], inv, {"qwen-32b": 60.0})  # only GPU 1 is whole


def test_kind_filter_and_pass_through() -> None:
    cpu_vllm = Deployment(name="tiny-vllm-cpu", model="/models/smol", engine=VllmSettings())  # device "cpu"
    llama = Deployment(name="smollm2", model="smollm2-135m", engine=LlamaCppSettings())
    plan = place([cpu_vllm, llama, vllm("llama-8b", device="H100")], h100(1), {"llama-8b": 20.0})
    assert plan.deployment("tiny-vllm-cpu") == cpu_vllm and plan.deployment("smollm2") == llama
    assert plan.deployment("llama-8b").placement.device == "H100"
    with pytest.raises(PlanInfeasibleError, match=r"asks for device 'A100'.*GPU kinds: H100"):
        place([vllm("llama-8b", device="A100")], h100(1), {"llama-8b": 20.0})
    with pytest.raises(ConfigError, match=r"memory_gb\['llama-8b'\]"):
        place([vllm("llama-8b")], h100(1), {})


def test_inputs_are_not_changed() -> None:
    deps = [vllm("a"), vllm("b", tp=2)]
    before = [d.model_copy() for d in deps]
    place(deps, h100(2), {"a": 10.0, "b": 60.0})
    assert deps == before


@pytest.mark.parametrize("seed", range(40))
def test_random_plans_respect_every_constraint_or_fail_clearly(seed: int) -> None:
    rng = random.Random(seed)
    inv = [h100(rng.choice([1, 2, 4, 8])), a100_mig(),
           Inventory(devices=h100(2, "n1").devices + h100(4, "n2").devices)][rng.randrange(3)]
    deps, needs = [], {}
    for i in range(rng.randint(1, 6)):
        tp = rng.choice([1, 1, 1, 2, 4])
        deps.append(vllm(f"d{i}", tp=tp, replicas=rng.choice([1, 1, 2])))
        needs[f"d{i}"] = round(rng.uniform(2.0, 70.0) * tp, 1)
    try:
        plan = place(deps, inv, needs)
    except PlanInfeasibleError as e:
        assert "To fix" in str(e)
        return
    check_invariants(plan, inv, needs)
    assert len(plan.replicas) == sum(d.replicas for d in deps)


def test_this_machine_without_gpu_refuses_gpu_deployments_with_the_reason() -> None:
    from murakkab_lg.backends.telemetry import detect_inventory
    from murakkab_lg.runtime.placement import place_on_this_machine

    if detect_inventory()[1] is None:
        pytest.skip("this machine has GPU telemetry")
    with pytest.raises(PlanInfeasibleError, match=r"No GPU inventory: .*To fix"):
        place_on_this_machine([vllm("llama-8b")], {"llama-8b": 20.0})
    cpu_only = Deployment(name="smol", model="/m", engine=VllmSettings())
    assert place_on_this_machine([cpu_only], {}).deployments == (cpu_only,)


@pytest.mark.parametrize("seed", range(6))
def test_planner_and_packer_share_one_gpu_memory_model(seed: int):
    """What the MILP co-locates on one GPU the runtime's packer places there too, with the same
    shares; and a set of deployments the packer cannot fit, the planner cannot either."""
    cands = synthetic_candidates(5, 300 + seed, gpu=True)
    wf = synthetic_workflow(4, 400 + seed, floors=False)
    inv = synthetic_inventory(1, 30.0 + 10 * seed)
    memory = {c.name: c.profile.memory_gb for c in cands}
    try:
        plan = MilpPolicy().plan(PlanningProblem(workflow=wf, candidates=tuple(cands), inventory=inv))
    except PlanInfeasibleError:
        plan = None
    if plan is not None:
        bare = [d.model_copy(update={"placement": Placement(device="gpu")}) for d in plan.deployments]
        packed = place(bare, inv, {d.name: memory[d.name] for d in bare})
        got = {d.name: d.engine.gpu_memory_utilization for d in packed.deployments}
        assert got == {d.name: d.engine.gpu_memory_utilization for d in plan.deployments}
    for c in cands:  # each alone: the packer fits it exactly when the planner can place it
        alone = c.deployment.model_copy(update={"placement": Placement(device="gpu")})
        try:
            place([alone], inv, {c.name: memory[c.name]})
            packer_fits = True
        except PlanInfeasibleError:
            packer_fits = False
        assert packer_fits == needs([c], inv)[0].placeable
