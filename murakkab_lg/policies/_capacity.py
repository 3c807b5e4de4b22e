"""Which devices a deployment may run on, and what it takes from each: the capacity model.

A deployment is cut into *slots*: on GPUs one slot per replica x tensor-parallel shard, each on a
distinct device; on a CPU one slot holding all replicas (they share the host's memory and
cores). What a GPU slot takes and what a device offers is the shared GPU memory model in
`policies/gpu_memory.py` (the runtime's packer uses the same functions): the profile's
`memory_gb` per shard (or, unstated, the share vLLM pre-allocates), against `memory_gb x 0.9` of
each GPU. Deployments placed on the same device (co-location) add up.
A deployment whose `placement.gpus` is set is pinned to those GPUs; otherwise the planner picks
devices whose kind matches `placement.device`. Hosted (`api`) deployments take no capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from murakkab_lg.policies.base import Candidate
from murakkab_lg.policies.gpu_memory import shard_gb, usable_gb
from murakkab_lg.spec import Device, Inventory, LlamaCppSettings, VllmSettings

__all__ = ("Need", "needs")


@dataclass(frozen=True)
class Need:
    """What one candidate deployment needs from the inventory."""

    slots: int  # devices it occupies when it runs (0: hosted, no capacity)
    memory_gb: dict[int, float]  # device index -> memory one slot takes there (eligible devices only)
    compute_units: float  # device compute one slot takes at full load (GPU: 1; CPU: cores)
    pinned: tuple[int, ...] = ()  # device indices it must use, if pinned
    why_not: str = ""  # set when it cannot be placed at all

    @property
    def placeable(self) -> bool:
        return not self.why_not


def _is_cpu(kind: str) -> bool:
    return kind.lower() == "cpu"


def _kind_matches(want: str, dev: Device) -> bool:
    if want.lower() in ("gpu", "cuda"):
        return not _is_cpu(dev.kind)
    return want.lower() == dev.kind.lower()


def _need(cand: Candidate, inv: Inventory) -> Need:
    dep, prof = cand.deployment, cand.profile
    eng = dep.engine
    if eng.engine == "api":
        return Need(slots=0, memory_gb={}, compute_units=0.0)
    place = dep.placement
    cpu = _is_cpu(place.device)
    tp = eng.tensor_parallel_size if isinstance(eng, VllmSettings) else 1
    per_shard = (prof.memory_gb or 0.0) / tp
    slots = 1 if cpu else dep.replicas * tp
    units = float(eng.threads * dep.replicas) if (cpu and isinstance(eng, LlamaCppSettings)) else 1.0

    def mem_on(dev: Device) -> float:
        if cpu:
            return per_shard * dep.replicas
        return shard_gb(eng, prof.memory_gb, dev)

    devs = list(enumerate(inv.devices))
    if place.host != "localhost":
        devs = [(i, d) for i, d in devs if d.host == place.host]
    wanted: set = set()
    if place.cuda_visible_devices:
        wanted = set(place.cuda_visible_devices)
        devs = [(i, d) for i, d in devs if d.uuid in wanted or d.id in wanted]
        pinned = True
    elif place.gpus and not cpu:
        wanted = set(place.gpus)
        devs = [(i, d) for i, d in devs
                if d.gpu_index in wanted and "/" not in d.id and _kind_matches(place.device, d)]
        pinned = True
    else:
        devs = [(i, d) for i, d in devs if _kind_matches(place.device, d)]
        pinned = False
    memory = {i: mem_on(d) for i, d in devs}
    fits = {i: m for i, m in memory.items() if m <= usable_gb(inv.devices[i]) + 1e-9}
    label = f"{dep.name} needs {slots} x {max(memory.values(), default=per_shard):.1f} GB on {place.device}"
    if pinned:
        if len(devs) < len(wanted):
            have = ", ".join(f"{d.id} ({d.kind})" for d in inv.devices) or "no devices"
            return Need(slots, memory, units, why_not=(
                f"{dep.name} is pinned to {place.device} {', '.join(map(str, sorted(wanted, key=str)))} but the "
                f"inventory has {have}"))
        if len(fits) < len(memory):
            return Need(slots, memory, units, why_not=f"{label}; its pinned devices are too small")
        return Need(len(memory), memory, units, pinned=tuple(sorted(memory)))
    if len(fits) < slots:
        have = ", ".join(f"{d.id} {usable_gb(d):g} GB usable" for _, d in devs) or f"no {place.device} device"
        return Need(slots, memory, units, why_not=f"{label}; inventory has {have}")
    return Need(slots, fits, units)


def needs(candidates: Sequence[Candidate], inventory: Inventory | None) -> list[Need] | None:
    """Per candidate, its capacity need; None when there is no inventory (capacity unconstrained)."""
    if inventory is None:
        return None
    return [_need(c, inventory) for c in candidates]
