"""GPU telemetry: inventory, power and measured energy (NVML), with a fake for CPU machines.

Nothing here imports `pynvml` at import time; `open_nvml()` does, and says which extra to
install when it is missing.
"""

from murakkab_lg.backends.telemetry.base import GpuInfo, GpuTelemetry, MigInfo, short_gpu_kind
from murakkab_lg.backends.telemetry.energy import (
    GpuEnergyAttributor,
    GpuEnergyMeter,
    GpuSample,
    sample,
    set_shared_attributor,
    shared_attributor,
)
from murakkab_lg.backends.telemetry.inventory import detect_inventory, inventory_from_telemetry
from murakkab_lg.backends.telemetry.nvml import NvmlTelemetry, open_nvml

__all__ = (
    "GpuEnergyAttributor",
    "GpuEnergyMeter",
    "GpuInfo",
    "GpuSample",
    "GpuTelemetry",
    "MigInfo",
    "NvmlTelemetry",
    "detect_inventory",
    "inventory_from_telemetry",
    "open_nvml",
    "sample",
    "set_shared_attributor",
    "shared_attributor",
    "short_gpu_kind",
)
