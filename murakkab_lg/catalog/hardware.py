"""What this machine's CPU is and what one busy core costs in watts (estimated, documented).

No RAPL counters are readable on the machines we target, so CPU energy is estimated as
CPU-seconds x watts per busy core. The default 3.75 W/core is AMD's published default TDP of the
EPYC 9654 (360 W) divided by its 96 cores; it ignores DRAM, uncore idle and turbo, so it is a
labelled estimate, never a measurement. Override with MURAKKAB_CPU_WATTS_PER_CORE.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

__all__ = ("DEFAULT_WATTS_PER_CORE", "cpu_flags", "cpu_model", "describe_machine", "watts_per_core")

DEFAULT_WATTS_PER_CORE = 360.0 / 96  # AMD EPYC 9654 default TDP / cores
WATTS_SOURCE = "AMD EPYC 9654 default TDP 360 W / 96 cores (AMD product page); estimated"


@cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> frozenset[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def watts_per_core() -> float:
    raw = os.environ.get("MURAKKAB_CPU_WATTS_PER_CORE")
    return float(raw) if raw else DEFAULT_WATTS_PER_CORE


def describe_machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"
