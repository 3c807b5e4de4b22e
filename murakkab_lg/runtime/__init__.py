"""The adaptive runtime: plans, deployment lifecycle, routing, telemetry, live state and adaptation."""

from murakkab_lg.runtime.admission import AdmissionLimits, RequestCaps
from murakkab_lg.runtime.breaker import BreakerPolicy
from murakkab_lg.runtime.control import AdaptiveConfig, ReplanEvent
from murakkab_lg.runtime.failover import RetryPolicy
from murakkab_lg.runtime.runtime import Route, Runtime, Served
from murakkab_lg.runtime.status import RuntimeStatus
from murakkab_lg.runtime.telemetry import CallRecord, NodeSummary, Telemetry, summarize

__all__ = ("AdaptiveConfig", "AdmissionLimits", "BreakerPolicy", "CallRecord", "NodeSummary", "ReplanEvent",
           "RequestCaps", "RetryPolicy", "Route", "Runtime", "RuntimeStatus", "Served", "Telemetry", "summarize")
