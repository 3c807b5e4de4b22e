"""Measured GPU energy per call: total-energy counter deltas split among concurrent calls.

Why this rule: a GPU's energy counter covers everything on it (several co-located deployments,
every request batched together), while we need joules per call. Between two readings, the
counter's delta is split equally among the calls in flight on that GPU during the interval; a
call's energy is the sum of its shares on every GPU it uses (a TP group spans several). Equal
shares per interval are exactly a split by time share of concurrency: a call alone for 1 s and
then with three others for 1 s gets all of the first second's energy and a quarter of the second's.
Energy drawn while no call is in flight (idle) is kept apart as `idle_j`, not charged to calls.

Readings happen at call boundaries (begin and end), so no sampler thread is needed: the counter
is cumulative and exact between any two reads. A MIG slice shares its parent GPU's counter, so
attribution is by physical GPU.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from murakkab_lg.backends.telemetry.base import GpuTelemetry

__all__ = ("GpuEnergyAttributor", "GpuEnergyMeter", "GpuSample", "sample", "set_shared_attributor", "shared_attributor")


class GpuSample(BaseModel):
    """One reading of one GPU."""

    model_config = ConfigDict(frozen=True)

    gpu: int
    at_s: float  # time.time()
    power_w: float
    energy_j: float


def sample(telemetry: GpuTelemetry, gpus: Iterable[int]) -> list[GpuSample]:
    """Power and the energy counter of each GPU now (a deployment's GPUs, for a dashboard or log)."""
    now = time.time()
    return [GpuSample(gpu=g, at_s=now, power_w=telemetry.power_w(g), energy_j=telemetry.energy_j(g)) for g in gpus]


@dataclass
class _GpuState:
    last_j: float | None = None
    inflight: set[int] = field(default_factory=set)
    idle_j: float = 0.0


class GpuEnergyAttributor:
    """Per-call joules from GPU energy counters, shared by every deployment on one host.

    One attributor per host (not per deployment), because co-located deployments share a GPU's
    counter and must share its deltas too.
    """

    label = "measured"

    def __init__(self, telemetry: GpuTelemetry) -> None:
        self.telemetry = telemetry
        self._lock = threading.Lock()
        self._gpus: dict[int, _GpuState] = {}
        self._calls: dict[int, tuple[tuple[int, ...], list[float]]] = {}
        self._ids = itertools.count()

    def _advance(self, gpu: int) -> None:
        state = self._gpus.setdefault(gpu, _GpuState())
        now = self.telemetry.energy_j(gpu)
        if state.last_j is not None:
            delta = max(0.0, now - state.last_j)  # a counter reset (driver reload) counts as 0
            if state.inflight:
                share = delta / len(state.inflight)
                for token in state.inflight:
                    self._calls[token][1][0] += share
            else:
                state.idle_j += delta
        state.last_j = now

    def begin(self, gpus: Iterable[int]) -> int:
        """Start charging a call on `gpus`; returns its token."""
        gpus = tuple(dict.fromkeys(gpus))
        with self._lock:
            for g in gpus:
                self._advance(g)
            token = next(self._ids)
            self._calls[token] = (gpus, [0.0])
            for g in gpus:
                self._gpus[g].inflight.add(token)
            return token

    def end(self, token: int) -> float | None:
        """Joules charged to the call, or None for an unknown token."""
        with self._lock:
            entry = self._calls.get(token)
            if entry is None:
                return None
            gpus, acc = entry
            for g in gpus:
                self._advance(g)
            for g in gpus:
                self._gpus[g].inflight.discard(token)
            del self._calls[token]
            return acc[0]

    def idle_j(self, gpu: int) -> float:
        """Energy GPU `gpu` drew between readings while no call was in flight."""
        with self._lock:
            state = self._gpus.get(gpu)
            return state.idle_j if state else 0.0

    def meter(self, gpus: Iterable[int]) -> GpuEnergyMeter:
        return GpuEnergyMeter(self, tuple(gpus))


class GpuEnergyMeter:
    """The attributor bound to one replica's GPUs, with the `begin()`/`end(token)` shape of
    `runtime.telemetry.CpuEnergyMeter`, so the runtime can hold either."""

    label = "measured"

    def __init__(self, attributor: GpuEnergyAttributor, gpus: tuple[int, ...]) -> None:
        self.attributor = attributor
        self.gpus = gpus

    def begin(self) -> int:
        return self.attributor.begin(self.gpus)

    def end(self, token: int) -> float | None:
        return self.attributor.end(token)


_shared: GpuEnergyAttributor | None = None
_shared_note: str | None = None
_shared_lock = threading.Lock()


def shared_attributor() -> GpuEnergyAttributor | None:
    """This process's attributor over NVML, opened on first use; None (once logged) without GPU telemetry.

    One per process because every deployment on a GPU must share that GPU's counter deltas.
    """
    global _shared, _shared_note
    with _shared_lock:
        if _shared is None and _shared_note is None:
            from murakkab_lg.backends.telemetry.nvml import open_nvml
            from murakkab_lg.errors import TelemetryUnavailableError

            try:
                _shared = GpuEnergyAttributor(open_nvml())
            except TelemetryUnavailableError as e:
                _shared_note = str(e)
                logging.getLogger("murakkab_lg.telemetry").warning("GPU energy not measured: %s", e)
        return _shared


def set_shared_attributor(attributor: GpuEnergyAttributor | None) -> None:
    """Install an attributor (a fake NVML in tests, or a remote host's telemetry); None resets."""
    global _shared, _shared_note
    with _shared_lock:
        _shared, _shared_note = attributor, None
