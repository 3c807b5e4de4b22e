"""Per-call telemetry and CPU energy attribution.

Energy on CPU is *estimated*: the engine process's CPU-seconds over the call, times a documented
watts-per-core figure (catalog.hardware). When several calls run on one engine at once, each CPU
second is shared equally among the calls in flight during it, so concurrent calls are not each
charged for the whole engine.
"""

from __future__ import annotations

import itertools
import statistics
import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema
from typing_extensions import TypedDict

__all__ = ("CallRecord", "CpuEnergyMeter", "NodeSummary", "Telemetry", "summarize")


class CallRecord(NamedTuple):
    """One engine call (one try of it): who asked, what served it, what it took.

    Why a NamedTuple, not a pydantic model: one is built per call on the serving path, and a
    server keeps thousands (`telemetry_records`). `Telemetry` stores each as a plain tuple, which
    the garbage collector stops tracking (it untracks exact tuples of plain values, not
    subclasses), and rebuilds records when read; kept as model instances, every full collection
    walked them all, and that set the p99 of a loaded server (benchmarks/endpoint_throughput.py).
    It is built only from the runtime's own values, so it needs no validation; inside pydantic
    models (`RunReport.records`) it validates from a record or a dict and serialises as an
    object, as it always did.
    """

    workflow: str | None
    node: str | None
    intent: str | None
    deployment: str
    model: str
    started_at: float
    latency_s: float
    ttft_s: float | None
    prompt_tokens: int
    completion_tokens: int
    energy_j: float | None
    energy_label: Literal["estimated", "measured"] | None
    ok: bool = True
    error: str | None = None
    retries: int = 0  # tries of the same call before this one
    fallback_from: str | None = None  # the planned deployment, when this try went to another
    # Cascades: which stage served this record (0: the first), whether the node's check ran on its
    # answer ("pass"/"fail", None: no check), and whether the call went on to the next stage.
    stage: int = 0
    check: Literal["pass", "fail"] | None = None
    escalated: bool = False
    # Calls in flight on the replica when this one started, itself included: past the engine's
    # slots, part of `latency_s` was spent waiting (live state takes that out of service time).
    concurrency: int = 1
    # Money, where the engine has a per-token price (hosted APIs, from litellm's price map);
    # None for self-hosted engines, whose cost is their energy and hardware.
    cost_usd: float | None = None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        fields = TypedDict("CallRecordFields", cls.__annotations__)  # type: ignore[operator]
        as_dict = handler.generate_schema(fields)
        return core_schema.union_schema(
            [core_schema.is_instance_schema(cls),
             core_schema.chain_schema([as_dict, core_schema.no_info_plain_validator_function(lambda d: cls(**d))])],
            serialization=core_schema.plain_serializer_function_ser_schema(lambda r: r._asdict()),
        )


_as_record = CallRecord._make


class CpuEnergyMeter:
    """Attributes one engine process's CPU time to the calls in flight on it."""

    label = "estimated"  # CPU time x watts per core, not a reading of a power counter

    def __init__(self, read_cpu_s: Callable[[], float | None], watts_per_core: float) -> None:
        self._read = read_cpu_s
        self.watts_per_core = watts_per_core
        self._lock = threading.Lock()
        self._last: float | None = None
        self._inflight: dict[int, float] = {}
        self._ids = itertools.count()

    def _advance(self) -> None:
        now = self._read()
        if now is None:
            return
        if self._last is not None and self._inflight:
            share = max(0.0, now - self._last) / len(self._inflight)
            for k in self._inflight:
                self._inflight[k] += share
        self._last = now

    def begin(self) -> int:
        with self._lock:
            self._advance()
            token = next(self._ids)
            self._inflight[token] = 0.0
            return token

    def end(self, token: int) -> float | None:
        """Joules attributed to the call, or None where CPU time cannot be read."""
        with self._lock:
            self._advance()
            cpu = self._inflight.pop(token, None)
        if cpu is None or self._last is None:
            return None
        return cpu * self.watts_per_core


class NoEnergyMeter:
    """The meter of an engine that can never report its CPU or GPU use (a server someone else
    runs, a hosted API): every call's energy is unknown (None, never 0), and saying so costs the
    call nothing (a CpuEnergyMeter would take its lock and ask for CPU time twice per call)."""

    label = "unknown"

    def begin(self) -> int:
        return 0

    def end(self, token: int) -> None:
        return None


NO_ENERGY_METER = NoEnergyMeter()


class Telemetry:
    """An append-only, thread-safe list of call records with a listener hook.

    `max_records` bounds memory for long-running processes (a server): past it the oldest records
    are dropped, and `mark()`/`since()` keep counting every record ever made, so a mark taken
    before a run still selects exactly that run's records while they are retained.
    """

    def __init__(self, max_records: int | None = None) -> None:
        self._records: list[tuple[Any, ...]] = []  # CallRecords as plain tuples
        self._lock = threading.Lock()
        self.listeners: list[Callable[[CallRecord], None]] = []
        self.max_records = max_records
        self._dropped = 0  # records discarded from the front

    def record(self, rec: CallRecord) -> None:
        with self._lock:
            self._records.append(tuple(rec))  # untracked by the gc once collected young (CallRecord's why)
            if self.max_records is not None and len(self._records) > self.max_records:
                # Drop in batches (a tenth of the bound) so trimming is amortised O(1) per record.
                cut = len(self._records) - self.max_records + max(1, self.max_records // 10)
                del self._records[:cut]
                self._dropped += cut
        for fn in self.listeners:
            fn(rec)

    def records(self) -> list[CallRecord]:
        with self._lock:
            kept = list(self._records)
        return list(map(_as_record, kept))

    def mark(self) -> int:
        with self._lock:
            return self._dropped + len(self._records)

    def since(self, mark: int) -> list[CallRecord]:
        return self.read(mark)[0]

    def read(self, mark: int) -> tuple[list[CallRecord], int]:
        """The records since `mark` and the mark after them, taken together (for followers)."""
        with self._lock:
            kept, end = self._records[max(0, mark - self._dropped):], self._dropped + len(self._records)
        return list(map(_as_record, kept)), end


class NodeSummary(BaseModel):
    """Per-node totals of a set of calls (a wrapped run's report, the demo, /metrics)."""

    model_config = ConfigDict(frozen=True)

    node: str
    intent: str | None = None
    deployments: tuple[str, ...]
    calls: int  # tries, failed ones included
    errors: int  # failed tries
    retries: int = 0  # tries that repeated a failed one
    fallbacks: int = 0  # calls served by a deployment other than the planned one
    p50_s: float
    p95_s: float
    prompt_tokens: int
    completion_tokens: int
    energy_j: float | None  # None: no engine reported CPU or GPU energy for these calls
    energy_label: str  # estimated / measured / unknown, joined with "/" when calls differ
    cost_usd: float | None = None  # None: no call had a price
    # Cascades: share of the node's checked first-stage answers that failed and escalated
    # (None: no check ran on this node's calls).
    escalation_rate: float | None = None


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


def _escalation_rate(records: list[CallRecord]) -> float | None:
    checked = [r for r in records if r.stage == 0 and r.check is not None]
    return sum(r.escalated for r in checked) / len(checked) if checked else None


def summarize(records: Iterable[CallRecord]) -> list[NodeSummary]:
    """Per-node totals in first-seen order."""
    by_node: dict[str, list[CallRecord]] = {}
    for r in records:
        by_node.setdefault(r.node or "(unrouted)", []).append(r)
    out = []
    for node, rs in by_node.items():
        lat = sorted(r.latency_s for r in rs if r.ok)
        labels = {r.energy_label or "unknown" for r in rs}  # a hosted call's energy is unknown, never 0
        known = labels - {"unknown"}
        costs = [r.cost_usd for r in rs if r.cost_usd is not None]
        out.append(NodeSummary(
            node=node, intent=rs[0].intent, deployments=tuple(dict.fromkeys(r.deployment for r in rs)), calls=len(rs),
            errors=sum(not r.ok for r in rs), retries=sum(r.retries > 0 for r in rs),
            fallbacks=sum(r.ok and r.fallback_from is not None for r in rs), p50_s=_pct(lat, 50), p95_s=_pct(lat, 95),
            prompt_tokens=sum(r.prompt_tokens for r in rs),
            completion_tokens=sum(r.completion_tokens for r in rs),
            energy_j=sum(r.energy_j or 0.0 for r in rs) if known else None,
            energy_label="/".join(sorted(labels)),
            cost_usd=sum(costs) if costs else None,
            escalation_rate=_escalation_rate(rs),
        ))
    return out
