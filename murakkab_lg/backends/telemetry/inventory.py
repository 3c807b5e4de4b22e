"""The planner's device capacity model, filled from GPU telemetry (or the CPU alone).

A whole GPU is one `Device` (compute_units 1.0); a GPU in MIG mode is one `Device` per MIG
instance, with its own memory, its compute share (slices of 7) and its UUID, because that is
what CUDA_VISIBLE_DEVICES names and what a placement can give one engine.
"""

from __future__ import annotations

import os
from pathlib import Path

from murakkab_lg.backends.telemetry.base import GpuInfo, GpuTelemetry
from murakkab_lg.errors import TelemetryUnavailableError
from murakkab_lg.spec import Device, Inventory

__all__ = ("MIG_COMPUTE_SLICES", "cpu_device", "detect_inventory", "gpu_devices", "inventory_from_telemetry")

MIG_COMPUTE_SLICES = 7  # A100, H100, H200 and B200 split into at most 7 compute slices


def _mem_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)  # kB -> GiB
    except OSError:
        pass
    return 0.0


def cpu_device(host: str = "localhost") -> Device:
    """This host's CPU: all its cores and RAM as one schedulable device."""
    return Device(id="cpu", kind="cpu", memory_gb=_mem_total_gb(), compute_units=float(os.cpu_count() or 1),
                  host=host)


def gpu_devices(gpu: GpuInfo, host: str = "localhost") -> list[Device]:
    """One Device for a whole GPU, or one per MIG instance when MIG is on."""
    if gpu.mig_enabled:
        return [
            Device(id=f"gpu{gpu.index}/mig{m.profile}/{m.index}", kind=gpu.kind, memory_gb=m.memory_gb,
                   compute_units=m.slices / MIG_COMPUTE_SLICES, host=host, gpu_index=gpu.index, uuid=m.uuid)
            for m in gpu.mig
        ]
    return [Device(id=f"gpu{gpu.index}", kind=gpu.kind, memory_gb=gpu.memory_gb, compute_units=1.0, host=host,
                   power_limit_w=gpu.power_limit_w, gpu_index=gpu.index, uuid=gpu.uuid)]


def inventory_from_telemetry(
    telemetry: GpuTelemetry, *, host: str = "localhost", include_cpu: bool = True
) -> Inventory:
    devices = [d for g in telemetry.gpus() for d in gpu_devices(g, host)]
    if include_cpu:
        devices.append(cpu_device(host))
    return Inventory(devices=tuple(devices))


def detect_inventory(*, host: str = "localhost") -> tuple[Inventory, str | None]:
    """This machine's inventory through NVML, or its CPU alone plus the reason NVML was not used.

    Never raises for a missing GPU: a CPU machine is a normal place to run, and the caller shows
    the reason (no package, no driver, no GPU) next to the estimated-energy path it falls back to.
    """
    from murakkab_lg.backends.telemetry.nvml import open_nvml

    try:
        telemetry = open_nvml()
    except TelemetryUnavailableError as e:
        return Inventory(devices=(cpu_device(host),)), str(e)
    try:
        return inventory_from_telemetry(telemetry, host=host), None
    finally:
        telemetry.close()
