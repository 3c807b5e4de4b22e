"""The adaptive runtime: plans, deployment lifecycle, routing and telemetry."""

from murakkab_lg.runtime.runtime import Route, Runtime
from murakkab_lg.runtime.telemetry import CallRecord, NodeSummary, Telemetry, summarize

__all__ = ("CallRecord", "NodeSummary", "Route", "Runtime", "Telemetry", "summarize")
