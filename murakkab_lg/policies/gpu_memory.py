"""The one GPU memory model, shared by the planner (`milp`'s capacity rows) and the runtime's packer.

Why one module: the planner decides which deployments may share a GPU and the packer
(`runtime/placement.py`) decides the `gpu_memory_utilization` each co-located vLLM engine is
told. If they count memory differently, the planner promises co-locations the packer refuses,
or refuses ones it would accept. Both call the functions here. It sits in `policies` because the
planner may import only spec, errors and its own modules; the runtime sits above and imports it.

The model:
- A device offers `usable_gb`: a GPU (or MIG slice) `memory_gb * max_gpu_memory_utilization`
  (vLLM's default 0.9: the rest is CUDA context, NCCL buffers and fragmentation headroom);
  a host's CPU memory is offered whole.
- One replica shard of a deployment takes `shard_gb` on each device of its tensor-parallel group:
  its profile's `memory_gb / tensor_parallel_size` (weights and KV cache shard evenly). Where the
  profile states no memory, a vLLM engine takes what it pre-allocates, its configured
  `gpu_memory_utilization` share of the device; other engines count 0.
- Shards on one device add up and must fit its `usable_gb`.
- `gpu_memory_utilization` is therefore an output of placement: each vLLM engine on a device is
  told its need as a share of the device, with the device's free headroom spread over the
  residents in proportion to their needs (`shares`), so a deployment alone gets the whole usable
  memory (all extra KV cache). A deployment's setting is its smallest share over its devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from murakkab_lg.spec import Device, EngineConfig, VllmSettings

__all__ = ("DEFAULT_MAX_GPU_MEMORY_UTILIZATION", "is_gpu", "shard_gb", "shares", "usable_gb")

DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's own default: 10% headroom per GPU


def is_gpu(device: Device) -> bool:
    return device.kind.lower() != "cpu"


def usable_gb(device: Device, max_gpu_memory_utilization: float = DEFAULT_MAX_GPU_MEMORY_UTILIZATION) -> float:
    """Memory deployments may take on `device` in total."""
    return device.memory_gb * max_gpu_memory_utilization if is_gpu(device) else device.memory_gb


def shard_gb(engine: EngineConfig, memory_gb: float | None, device: Device | None = None) -> float:
    """GB one replica shard of a deployment with this engine takes on GPU `device`.

    `device` matters only where the profile states no memory (vLLM then takes its share of it).
    """
    if memory_gb is not None:
        tp = engine.tensor_parallel_size if isinstance(engine, VllmSettings) else 1
        return memory_gb / tp
    if isinstance(engine, VllmSettings):
        if device is None:
            raise ValueError("shard_gb: a vLLM engine without a stated memory needs the device")
        return engine.gpu_memory_utilization * device.memory_gb
    return 0.0


def _floor2(x: float) -> float:
    return math.floor(x * 100 + 1e-9) / 100


def shares(device: Device, needs_gb: Sequence[float],
           max_gpu_memory_utilization: float = DEFAULT_MAX_GPU_MEMORY_UTILIZATION) -> list[float]:
    """The `gpu_memory_utilization` of each engine whose shard (`needs_gb[i]`) sits on `device`.

    Each share is at least the shard's need over the device's memory and the shares add up to at
    most `max_gpu_memory_utilization` (rounded down to 0.01, never below 0.01).
    """
    total = sum(needs_gb)
    if total <= 0:
        return [max(0.01, _floor2(max_gpu_memory_utilization / max(1, len(needs_gb))))] * len(needs_gb)
    scale = usable_gb(device, max_gpu_memory_utilization) / total
    return [max(0.01, _floor2(need / device.memory_gb * scale)) for need in needs_gb]
