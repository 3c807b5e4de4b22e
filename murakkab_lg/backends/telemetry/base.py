"""The GPU telemetry seam: inventory, power, and the total-energy counter of each GPU.

Why a protocol: the runtime and the energy attributor must work the same against real NVML on a
GPU host and against a fake on the CPU machines where tests run. The seam is the few readings we
need, not NVML's API, so another backend (DCGM, amd-smi) can sit behind it later.

Units are in the names: memory in GB meaning GiB (2^30 bytes, as nvidia-smi counts; an "80GB"
H100 shows 79.6), power in W, energy in J. NVML reports bytes, mW and mJ; the backend converts once.
"""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ("GpuInfo", "GpuTelemetry", "MigInfo", "short_gpu_kind")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MigInfo(_Frozen):
    """One MIG instance (a slice of a physical GPU, addressed by its own UUID)."""

    index: int  # position among the parent's MIG devices
    profile: str  # "1g.10gb", "3g.40gb", ...
    memory_gb: Annotated[float, Field(ge=0.0)]
    uuid: str
    slices: Annotated[int, Field(ge=1)] = 1  # compute slices ("3" in 3g.40gb)


class GpuInfo(_Frozen):
    """One physical GPU as NVML describes it."""

    index: int
    name: str  # "NVIDIA H100 80GB HBM3"
    uuid: str
    memory_gb: Annotated[float, Field(ge=0.0)]
    power_limit_w: Annotated[float, Field(ge=0.0)] | None = None
    mig_enabled: bool = False
    mig: tuple[MigInfo, ...] = ()
    energy_counter: bool = True  # False on GPUs older than Volta (no total-energy counter)

    @property
    def kind(self) -> str:
        return short_gpu_kind(self.name)


@runtime_checkable
class GpuTelemetry(Protocol):
    """What the runtime reads from a GPU host. Implementations must be thread-safe for reads."""

    backend: str  # "nvml", "fake-nvml", ...

    def driver_version(self) -> str: ...

    def gpus(self) -> tuple[GpuInfo, ...]: ...

    def power_w(self, index: int) -> float:
        """Current board power draw of GPU `index`."""
        ...

    def energy_j(self, index: int) -> float:
        """The GPU's total-energy counter (monotonic since driver load); deltas are what matter."""
        ...

    def close(self) -> None: ...


_KINDS = ("GH200", "H200", "H100", "H800", "H20", "B200", "B100", "GB200", "A100", "A800", "A10G", "A10", "A30",
          "A40", "A6000", "L40S", "L40", "L4", "V100", "P100", "P40", "T4", "RTX 6000", "RTX 4090", "RTX 3090")


def short_gpu_kind(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'H100': the kind profiles and placements are keyed by.

    Longer names are tried first where one contains another (L40S before L40, A10G before A10).
    An unknown name is returned without the vendor prefix rather than guessed.
    """
    upper = name.upper()
    for kind in sorted(_KINDS, key=len, reverse=True):
        token = kind.upper()
        pos = upper.find(token)
        if pos < 0:
            continue
        end = pos + len(token)
        # whole-token match: "A100" must not match inside "A1000"
        if (pos == 0 or not upper[pos - 1].isalnum()) and (end == len(upper) or not upper[end].isalnum()):
            return kind
    return name.removeprefix("NVIDIA ").removeprefix("Tesla ").strip()
