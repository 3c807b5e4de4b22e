"""A fake of the `pynvml` module for CPU machines: the same functions, a simulated clock.

Why fake the module and not the telemetry protocol: `NvmlTelemetry` is then the code under test
(units, MIG discovery, missing counters), and a test drives time and power exactly, so expected
energies are products a reader can check by hand. Only the NVML calls `nvml.py` makes exist here.

    fake = FakeNvml.fleet("NVIDIA H100 80GB HBM3", count=8)
    tel = NvmlTelemetry(fake)          # implements GpuTelemetry
    fake.set_power(0, 350.0); fake.advance(2.0)   # GPU 0's counter grows by 700 J
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

__all__ = ("FakeGpu", "FakeMig", "FakeNvml")

_GIB = 1 << 30


class NVMLError(Exception):
    """Mirrors pynvml.NVMLError; the subclasses below mirror the ones nvml.py tells apart."""


class NVMLError_NotSupported(NVMLError):  # pynvml's own name
    pass


class NVMLError_NotFound(NVMLError):  # pynvml's own name
    pass


class NVMLError_LibraryNotFound(NVMLError):  # pynvml's own name
    pass


class NVMLError_InvalidArgument(NVMLError):  # pynvml's own name
    pass


@dataclass
class FakeMig:
    profile: str  # "1g.10gb"
    memory_gb: float
    uuid: str = ""


@dataclass
class FakeGpu:
    name: str
    memory_gb: float
    power_limit_w: float | None = 700.0
    mig_capable: bool = False
    mig: Sequence[FakeMig] | None = None  # None: MIG off; a list: MIG on with these instances
    energy_counter: bool = True
    uuid: str = ""
    power_w: float = 0.0
    energy_mj: float = 0.0
    max_mig: int = 7


@dataclass(frozen=True)
class _Handle:
    gpu: int
    mig: int | None = None


@dataclass
class FakeNvml:
    """Stands in for `pynvml`; pass it to `NvmlTelemetry(nvml=...)`."""

    gpus: list[FakeGpu] = field(default_factory=list)
    driver: str = "550.54.15 (fake)"
    fail_init: type[NVMLError] | None = None  # e.g. NVMLError_LibraryNotFound: no driver
    BACKEND_NAME: str = "fake-nvml"

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVML_DEVICE_MIG_DISABLE = 0
    NVML_DEVICE_MIG_ENABLE = 1

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.init_count = 0
        for i, g in enumerate(self.gpus):
            g.uuid = g.uuid or f"GPU-fake-{i:04d}"
            for j, m in enumerate(g.mig or ()):
                m.uuid = m.uuid or f"MIG-fake-{i:04d}-{j}"

    @classmethod
    def fleet(cls, name: str = "NVIDIA H100 80GB HBM3", count: int = 1, memory_gb: float = 79.6,
              power_limit_w: float = 700.0) -> FakeNvml:
        return cls([FakeGpu(name, memory_gb, power_limit_w) for _ in range(count)])

    # -- test controls --------------------------------------------------------------------------
    def set_power(self, index: int, watts: float) -> None:
        with self._lock:
            self.gpus[index].power_w = watts

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass: every GPU's energy counter grows by its power times the time."""
        with self._lock:
            for g in self.gpus:
                g.energy_mj += g.power_w * seconds * 1000.0

    # -- the pynvml functions nvml.py calls -----------------------------------------------------
    def nvmlInit(self) -> None:
        if self.fail_init is not None:
            raise self.fail_init("fake: " + self.fail_init.__name__)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument(str(index))
        return _Handle(index)

    def _mig(self, h: _Handle) -> FakeMig:
        assert h.mig is not None
        return list(self.gpus[h.gpu].mig or ())[h.mig]

    def nvmlDeviceGetName(self, h: _Handle) -> str:
        g = self.gpus[h.gpu]
        return g.name if h.mig is None else f"{g.name} MIG {self._mig(h).profile}"

    def nvmlDeviceGetUUID(self, h: _Handle) -> str:
        return self.gpus[h.gpu].uuid if h.mig is None else self._mig(h).uuid

    def nvmlDeviceGetMemoryInfo(self, h: _Handle) -> SimpleNamespace:
        gb = self.gpus[h.gpu].memory_gb if h.mig is None else self._mig(h).memory_gb
        total = int(gb * _GIB)
        return SimpleNamespace(total=total, free=total, used=0)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: _Handle) -> int:
        limit = self.gpus[h.gpu].power_limit_w
        if limit is None:
            raise NVMLError_NotSupported("power limit")
        return int(limit * 1000)

    def nvmlDeviceGetMigMode(self, h: _Handle) -> list[int]:
        g = self.gpus[h.gpu]
        if not (g.mig_capable or g.mig is not None):
            raise NVMLError_NotSupported("MIG")
        mode = self.NVML_DEVICE_MIG_ENABLE if g.mig is not None else self.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: _Handle) -> int:
        return self.gpus[h.gpu].max_mig

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: _Handle, index: int) -> _Handle:
        if index >= len(self.gpus[h.gpu].mig or ()):
            raise NVMLError_NotFound(f"MIG slot {index}")
        return _Handle(h.gpu, index)

    def nvmlDeviceGetPowerUsage(self, h: _Handle) -> int:
        return int(self.gpus[h.gpu].power_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: _Handle) -> int:
        g = self.gpus[h.gpu]
        if not g.energy_counter:
            raise NVMLError_NotSupported("energy counter")
        with self._lock:
            return int(g.energy_mj)
