"""From a plan to a simulated fleet: engine settings, replicas for the load, and GPUs from the packer.

Provisioning rule, the same for every policy so the comparison is plan against plan: each
deployment gets the fewest replicas at which its mean concurrency, by Little's law at the
offered load (requests/s x service time at that concurrency, solved as a fixed point), stays at
or below `target_concurrency` and the engine's own limit (vLLM max_num_seqs, llama.cpp parallel).

GPUs: replicas are placed by the runtime's packer (`runtime.placement.place`) on an inventory of
8-GPU hosts of the profile's GPU kind, each replica on `tensor_parallel_size` whole GPUs: the
published rows were measured with a replica alone on its GPUs, so the simulator does not
co-locate replicas (it would have no measured slowdown to apply).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from murakkab_lg.catalog.profiles import DeploymentProfile
from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.runtime.placement import place
from murakkab_lg.sim.engine import Rates, rates_from_profile
from murakkab_lg.sim.simulator import SimDeployment
from murakkab_lg.sim.workload import Template
from murakkab_lg.spec import Deployment, Device, Inventory, LlamaCppSettings, SimulatedSettings, VllmSettings

__all__ = ("GPU_MEMORY_GB", "Fleet", "build_fleet", "offered_load", "replicas_for")

# Memory per GPU by kind (vendor data sheets: H100 SXM 80 GB; B200 in DGX B200, 1,440 GB / 8).
GPU_MEMORY_GB: dict[str, float] = {"H100": 80.0, "B200": 180.0}


def max_seqs_of(dep: Deployment) -> int:
    """The engine setting that bounds continuous batching."""
    eng = dep.engine
    if isinstance(eng, VllmSettings):
        return eng.max_num_seqs
    if isinstance(eng, LlamaCppSettings):
        return eng.parallel
    if isinstance(eng, SimulatedSettings):
        return 256
    raise ConfigError(f"deployment {dep.name!r}: engine {eng.engine!r} cannot be simulated (hosted API)")


def offered_load(template: Template, assign: Mapping[str, str],
                 rate_per_s: float) -> dict[str, list[tuple[float, int, int]]]:
    """Per deployment: (requests/s, input tokens, output tokens) of each node sent to it."""
    out: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for n in template.llm_nodes():
        out[assign[n.name]].append((rate_per_s * n.rounds * n.fanout, n.input_tokens, n.output_tokens))
    return dict(out)


def _service_s(rates: Rates, c: float, tin: int, tout: int) -> float:
    n = min(rates.max_seqs, max(1, math.ceil(c)))
    pre = tin / rates.prefill_tok_s[n] if rates.prefill_tok_s is not None and tin else 0.0
    return pre + tout * rates.tpot_s[n]


def _fits(rates: Rates, load: list[tuple[float, int, int]], replicas: int, cap: float) -> bool:
    """Does the Little's-law fixed point c = sum(rate x service(c)) / replicas settle at or below cap?"""
    c = 1.0
    for _ in range(100):
        nxt = sum(lam * _service_s(rates, c, tin, tout) for lam, tin, tout in load) / replicas
        if nxt > rates.max_seqs:
            return False
        if abs(nxt - c) < 1e-6:
            break
        c = nxt
    return c <= cap


def replicas_for(rates: Rates, load: list[tuple[float, int, int]], target_concurrency: float,
                 max_replicas: int = 100_000) -> int:
    """The fewest replicas whose Little's-law concurrency stays within the target and max_seqs."""
    cap = min(float(rates.max_seqs), target_concurrency)
    hi = 1
    while not _fits(rates, load, hi, cap):
        hi *= 2
        if hi > max_replicas:
            raise PlanInfeasibleError(f"the offered load needs more than {max_replicas} replicas")
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:  # the predicate is monotone in replicas
        mid = (lo + hi) // 2
        if _fits(rates, load, mid, cap):
            hi = mid
        else:
            lo = mid + 1
    return hi


class Fleet:
    """The simulated deployments of one plan, with their GPU account."""

    def __init__(self, deployments: list[SimDeployment], gpus: int, placed: list[Deployment]) -> None:
        self.deployments = deployments
        self.gpus = gpus
        self.placed = placed

    def replicas(self) -> dict[str, int]:
        return {d.name: d.replicas for d in self.deployments}


def build_fleet(template: Template, assign: Mapping[str, str], plan_deployments: list[Deployment],
                profiles: Mapping[str, DeploymentProfile], rate_per_s: float, *, target_concurrency: float = 64.0,
                cold_start_s: float = 0.0, min_replicas: Mapping[str, int] | None = None,
                inventory: Inventory | None = None, warm: Sequence[str] = ()) -> Fleet:
    """Simulated deployments for the plan's deployments that receive requests, sized for `rate_per_s`.

    With an `inventory` the sized fleet must fit on it (the packer raises PlanInfeasibleError naming
    the replica that does not); without one, enough 8-GPU hosts are assumed. `warm` names
    deployments that receive no planned load but run anyway (the adaptive runtime's alternatives).
    """
    load = offered_load(template, assign, rate_per_s)
    for name in warm:
        load.setdefault(name, [])
    by_name = {d.name: d for d in plan_deployments}
    sims: list[SimDeployment] = []
    sized: list[Deployment] = []
    for name in sorted(load):
        dep = by_name.get(name)
        if dep is None:
            raise ConfigError(f"node assigned to {name!r}, which the plan does not deploy")
        prof = profiles.get(name)
        if prof is None:
            raise ConfigError(f"deployment {name!r} has no profile to simulate it with. To fix: add its profile.")
        # llama.cpp: its prompt steps stall decoding (sim/engine.py; what the demo validation showed)
        rates = rates_from_profile(prof, max_seqs_of(dep), serial_prefill=isinstance(dep.engine, LlamaCppSettings))
        reps = replicas_for(rates, load[name], target_concurrency) if rate_per_s > 0 and load[name] else 1
        reps = max(reps, dep.replicas, (min_replicas or {}).get(name, 1))
        eng = dep.engine
        tp = eng.tensor_parallel_size if isinstance(eng, VllmSettings) else 0
        on_gpu = isinstance(eng, VllmSettings) and dep.placement.device.lower() != "cpu"
        if on_gpu and prof.hardware and not prof.hardware.startswith(f"{tp}x"):
            raise ConfigError(
                f"deployment {name!r}: tensor_parallel_size {tp} but its profile was measured on {prof.hardware}; "
                "no published row covers that degree. To fix: use the profiled GPU count.")
        threads = eng.threads if isinstance(eng, LlamaCppSettings) else 0
        sims.append(SimDeployment(name=name, rates=rates, replicas=reps, gpus_per_replica=tp if on_gpu else 0,
                                  cpu_threads=threads, host=dep.placement.host, cold_start_s=cold_start_s,
                                  label=f"simulated {eng.label()} from {prof.energy_label} profile"))
        sized.append(dep.model_copy(update={"replicas": reps}))
    gpus, placed = _place(sized, inventory)
    return Fleet(sims, gpus, placed)


def _hosts_for(gpu: list[Deployment]) -> Inventory:
    need: dict[str, int] = defaultdict(int)
    for d in gpu:
        need[d.placement.device] += d.replicas * d.engine.tensor_parallel_size  # type: ignore[union-attr]
    devices = []
    for kind, n in sorted(need.items()):
        mem = GPU_MEMORY_GB.get(kind)
        if mem is None:
            raise ConfigError(f"no memory figure for GPU kind {kind!r}; known: {', '.join(GPU_MEMORY_GB)}. "
                              "To fix: give an inventory with its memory_gb.")
        for h in range(math.ceil(n / 8)):
            devices += [Device(id=f"gpu{i}", kind=kind, memory_gb=mem, gpu_index=i, host=f"{kind.lower()}-{h}")
                        for i in range(8)]
    return Inventory(devices=tuple(devices))


def _place(deps: list[Deployment], inventory: Inventory | None) -> tuple[int, list[Deployment]]:
    gpu = [d for d in deps if isinstance(d.engine, VllmSettings) and d.placement.device.lower() != "cpu"]
    if not gpu:
        return 0, deps
    inv = inventory or _hosts_for(gpu)
    per_gpu = {dev.kind: dev.memory_gb for dev in inv.devices if dev.gpu_index is not None}
    # whole GPUs per replica: the need fills each of its tp GPUs to the packer's cap (0.9 x memory)
    memory = {d.name: d.engine.tensor_parallel_size * 0.9 * per_gpu.get(d.placement.device, 0.0)  # type: ignore[union-attr]
              for d in gpu}
    unpinned = [d.model_copy(update={"placement": d.placement.model_copy(update={"gpus": ()})}) for d in gpu]
    plan = place(unpinned, inv, memory)
    used = {(r.host, g) for r in plan.replicas for g in r.gpus}
    return len(used), list(plan.deployments)
