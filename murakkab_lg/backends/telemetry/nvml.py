"""GPU telemetry through NVML (`nvidia-ml-py`, extra `nvml`), imported only when asked for.

Why lazily: most users of murakkab-lg run on CPU machines or hosted APIs, and importing the
library must not need an NVIDIA package. Why the module is injectable: the fake in `fake.py`
stands in for `pynvml` itself, so the translation below (units, MIG discovery, unsupported
counters) is what the CPU tests exercise, not a parallel implementation.
"""

from __future__ import annotations

import re
import threading
from types import ModuleType
from typing import Any

from murakkab_lg.backends.telemetry.base import GpuInfo, MigInfo
from murakkab_lg.errors import TelemetryUnavailableError

__all__ = ("NvmlTelemetry", "import_pynvml", "open_nvml")

_GIB = float(1 << 30)
_MIG_PROFILE = re.compile(r"(\d+)g\.(\d+)gb", re.IGNORECASE)
_ESTIMATED = "Energy will be estimated from profiles instead of measured."


def import_pynvml() -> ModuleType:
    """`pynvml` from nvidia-ml-py, or a TelemetryUnavailableError that names the extra."""
    try:
        import pynvml
    except ImportError:
        raise TelemetryUnavailableError(
            "GPU telemetry needs nvidia-ml-py, which is not installed. To fix: "
            f"`pip install 'murakkab-lg[nvml]'`. {_ESTIMATED}"
        ) from None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _why(nvml: Any, err: Exception) -> str:
    """A reason a person can act on, for the NVML errors seen on machines without a usable GPU."""
    name = type(err).__name__
    if name == "NVMLError_LibraryNotFound":
        return ("the NVIDIA driver's libnvidia-ml.so is not on this machine (no NVIDIA driver, or a "
                "container started without the GPU runtime). To fix: install the driver, or run the "
                "container with `--gpus all`")
    if name == "NVMLError_DriverNotLoaded":
        return "the NVIDIA kernel driver is not loaded. To fix: load it (`nvidia-smi` should list the GPUs)"
    if name == "NVMLError_NoPermission":
        return "this user may not open /dev/nvidia*. To fix: add the user to the `video` group or run as root"
    return f"{name}: {err}. To fix: check that `nvidia-smi` works on this machine"


class NvmlTelemetry:
    """`GpuTelemetry` over NVML. Open with `open_nvml()`; close when done (NVML is refcounted)."""

    backend = "nvml"

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml if nvml is not None else import_pynvml()
        self.backend = getattr(self._nvml, "BACKEND_NAME", "nvml")
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as e:
            raise TelemetryUnavailableError(f"NVML could not start: {_why(self._nvml, e)}. {_ESTIMATED}") from None
        self._lock = threading.Lock()
        self._closed = False
        self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self._nvml.nvmlDeviceGetCount())]
        if not self._handles:
            self.close()
            raise TelemetryUnavailableError(f"NVML started but reports no GPU on this machine. {_ESTIMATED}")
        self._gpus: tuple[GpuInfo, ...] | None = None

    def driver_version(self) -> str:
        return _text(self._nvml.nvmlSystemGetDriverVersion())

    def gpus(self) -> tuple[GpuInfo, ...]:
        """Read once and cached: a GPU's name, memory and MIG layout do not change while we run."""
        if self._gpus is None:
            self._gpus = tuple(self._describe(i, h) for i, h in enumerate(self._handles))
        return self._gpus

    def _describe(self, index: int, handle: Any) -> GpuInfo:
        n = self._nvml
        try:
            limit_w: float | None = n.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        except n.NVMLError:
            limit_w = None
        try:
            n.nvmlDeviceGetTotalEnergyConsumption(handle)
            counter = True
        except n.NVMLError:
            counter = False
        return GpuInfo(
            index=index, name=_text(n.nvmlDeviceGetName(handle)), uuid=_text(n.nvmlDeviceGetUUID(handle)),
            memory_gb=n.nvmlDeviceGetMemoryInfo(handle).total / _GIB, power_limit_w=limit_w,
            mig_enabled=self._mig_enabled(handle), mig=self._mig_devices(handle), energy_counter=counter,
        )

    def _mig_enabled(self, handle: Any) -> bool:
        n = self._nvml
        try:
            current, _pending = n.nvmlDeviceGetMigMode(handle)
        except n.NVMLError:  # NotSupported: not a MIG-capable GPU
            return False
        return current == n.NVML_DEVICE_MIG_ENABLE

    def _mig_devices(self, handle: Any) -> tuple[MigInfo, ...]:
        if not self._mig_enabled(handle):
            return ()
        n = self._nvml
        out = []
        for i in range(n.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = n.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except n.NVMLError:  # NotFound: an empty slot
                continue
            name = _text(n.nvmlDeviceGetName(mig))
            m = _MIG_PROFILE.search(name)
            out.append(MigInfo(
                index=i, profile=m.group(0).lower() if m else name, slices=int(m.group(1)) if m else 1,
                memory_gb=n.nvmlDeviceGetMemoryInfo(mig).total / _GIB, uuid=_text(n.nvmlDeviceGetUUID(mig)),
            ))
        return tuple(out)

    def _handle(self, index: int) -> Any:
        try:
            return self._handles[index]
        except IndexError:
            raise TelemetryUnavailableError(
                f"GPU {index} does not exist: NVML sees {len(self._handles)} GPU(s) (0..{len(self._handles) - 1}). "
                "To fix: place deployments on GPUs from `murakkab doctor`'s inventory."
            ) from None

    def power_w(self, index: int) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle(index)) / 1000.0

    def energy_j(self, index: int) -> float:
        n = self._nvml
        try:
            return n.nvmlDeviceGetTotalEnergyConsumption(self._handle(index)) / 1000.0
        except n.NVMLError as e:
            raise TelemetryUnavailableError(
                f"GPU {index} has no total-energy counter ({type(e).__name__}); NVML offers it on Volta "
                f"and newer. {_ESTIMATED}"
            ) from None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._nvml.nvmlShutdown()

    def __enter__(self) -> NvmlTelemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_nvml(nvml: Any | None = None) -> NvmlTelemetry:
    """Start NVML and return its telemetry, or raise TelemetryUnavailableError saying why and how to fix."""
    return NvmlTelemetry(nvml)
