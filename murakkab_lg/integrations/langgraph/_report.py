"""The per-run report of a wrapped app: per node, the calls, who served them, latency, tokens, energy."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import RoutingError
from murakkab_lg.runtime.control import ReplanEvent
from murakkab_lg.runtime.telemetry import CallRecord, NodeSummary, summarize

__all__ = ("NodeReport", "RunReport")


NodeReport = NodeSummary  # one node's line in a run report


class RunReport(BaseModel):
    """What one wrapped run sent where. Energy is labelled `estimated` (CPU share) or `measured` (NVML)."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    started_at: float
    wall_s: float
    ok: bool
    error: str | None = None
    nodes: tuple[NodeReport, ...]
    records: tuple[CallRecord, ...]
    replans: tuple[ReplanEvent, ...] = ()  # re-plans of this workflow made while the run went on

    @classmethod
    def build(cls, workflow: str, started_at: float, wall_s: float, records: list[CallRecord],
              error: BaseException | None = None, replans: tuple[ReplanEvent, ...] = ()) -> RunReport:
        nodes = tuple(summarize(records))
        return cls(workflow=workflow, started_at=started_at, wall_s=wall_s, ok=error is None,
                   error=f"{type(error).__name__}: {error}" if error is not None else None,
                   nodes=nodes, records=tuple(records), replans=tuple(replans))

    @property
    def calls(self) -> int:
        return len(self.records)

    @property
    def cost_usd(self) -> float | None:
        """Money spent on priced (hosted) calls in this run; None when no call had a price."""
        known = [n.cost_usd for n in self.nodes if n.cost_usd is not None]
        return sum(known) if known else None

    @property
    def energy_j(self) -> float | None:
        known = [n.energy_j for n in self.nodes if n.energy_j is not None]
        return sum(known) if known else None

    def node(self, name: str) -> NodeReport:
        for n in self.nodes:
            if n.node == name:
                return n
        raise RoutingError(f"no routed call from node {name!r} in this run; nodes with calls: "
                           f"{', '.join(n.node for n in self.nodes) or 'none'}")

    def deployment_of(self, node: str) -> str:
        """The one deployment that served `node` in this run (an error if it was several)."""
        deps = self.node(node).deployments
        if len(deps) != 1:
            raise RoutingError(f"node {node!r} was served by {len(deps)} deployments: {', '.join(deps)}")
        return deps[0]

    def served(self) -> dict[str, tuple[str, ...]]:
        """node -> deployments that served it, for a one-line assertion in tests."""
        return {n.node: n.deployments for n in self.nodes}

    def table(self) -> Any:
        from rich.table import Table

        caption = ["energy: estim. = CPU-time share x W/core; meas. = NVML; n/a = unknown (hosted APIs). "
                   "cost: litellm's price map"]
        caption += [f"re-planned: {'; '.join(e.reasons)} (moved "
                    f"{', '.join(f'{k}: {a} -> {b}' for k, (a, b) in e.moved.items()) or 'nothing'})"
                    for e in self.replans]
        t = Table(title=f"{self.workflow}: {self.calls} routed calls in {self.wall_s:.2f} s",
                  caption="\n".join(caption))
        cascaded = any(n.escalation_rate is not None for n in self.nodes)
        cols = ["node", "intent", "deployment", "calls", "p50 s", "p95 s", "tokens in/out", "energy J", "cost $"]
        for col in cols + (["escalated"] if cascaded else []):
            t.add_column(col, justify="right" if col not in ("node", "intent", "deployment") else "left")
        for n in self.nodes:
            energy = "n/a" if n.energy_j is None else f"{n.energy_j:.2f} {n.energy_label[:4]}."
            cost = "-" if n.cost_usd is None else f"{n.cost_usd:.2e}"
            row = [n.node, n.intent or "-", ", ".join(n.deployments), str(n.calls),
                   f"{n.p50_s:.3f}", f"{n.p95_s:.3f}", f"{n.prompt_tokens}/{n.completion_tokens}", energy, cost]
            if cascaded:
                row.append("-" if n.escalation_rate is None else f"{n.escalation_rate:.0%}")
            t.add_row(*row)
        return t

    def __rich__(self) -> Any:
        return self.table()
