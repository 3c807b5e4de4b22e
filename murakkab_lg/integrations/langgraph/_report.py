"""The per-run report of a wrapped app: per node, the calls, who served them, latency, tokens, energy.

People read it three ways from one set of rows: `print(report)` gives a plain-text table,
rich (`console.print(report)`) a styled one, and a notebook an HTML table (`_repr_html_`). The
raw call records stay one attribute away (`report.records`), and `repr()` is the pydantic one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import RoutingError
from murakkab_lg.runtime.control import ReplanEvent
from murakkab_lg.runtime.telemetry import CallRecord, NodeSummary, summarize

__all__ = ("NodeReport", "RunReport")


# The per-node table's columns and their alignment: one list for the rich, text and HTML views.
_COLUMNS = (("node", "left"), ("intent", "left"), ("deployment", "left"), ("calls", "right"),
            ("errors", "right"), ("p50 s", "right"), ("p95 s", "right"), ("tokens in/out", "right"),
            ("energy J", "right"), ("cost $", "right"))

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

    # -- rendering: one set of rows, three views (rich in a terminal, text for print, HTML in a notebook)
    def title(self) -> str:
        status = "ok" if self.ok else f"FAILED ({self.error})"
        return f"run of {self.workflow!r}: {self.calls} routed calls in {self.wall_s:.2f} s, {status}"

    def caption(self) -> str:
        labels = "/".join(sorted({n.energy_label for n in self.nodes if n.energy_j is not None})) or "unknown"
        total = "n/a" if self.energy_j is None else f"{self.energy_j:.2f} J ({labels})"
        cost = "" if self.cost_usd is None else f", cost ${self.cost_usd:.2e} (litellm's price map)"
        lines = [f"total energy {total}{cost}; raw call records: .records"]
        lines += [f"re-planned: {'; '.join(e.reasons)} (moved "
                  f"{', '.join(f'{k}: {a} -> {b}' for k, (a, b) in e.moved.items()) or 'nothing'})"
                  for e in self.replans]
        return "\n".join(lines)

    def columns(self) -> tuple[tuple[str, str], ...]:
        """(header, alignment) per column; `escalated` only when a node ran a cascade, and
        `retries/fallbacks` only when a failed try was retried or a call served elsewhere."""
        cascaded = any(n.escalation_rate is not None for n in self.nodes)
        return _COLUMNS + ((("escalated", "right"),) if cascaded else ()) \
            + ((("retries/fallbacks", "right"),) if self._failed_over() else ())

    def _failed_over(self) -> bool:
        return any(n.retries or n.fallbacks for n in self.nodes)

    def rows(self) -> list[tuple[str, ...]]:
        """One row of display strings per node, in the order of `columns()`."""
        cascaded = any(n.escalation_rate is not None for n in self.nodes)
        failed_over = self._failed_over()
        out = []
        for n in self.nodes:
            energy = "n/a" if n.energy_j is None else f"{n.energy_j:.2f} {n.energy_label}"
            cost = "-" if n.cost_usd is None else f"{n.cost_usd:.2e}"
            row = (n.node, n.intent or "-", ", ".join(n.deployments), str(n.calls), str(n.errors),
                   f"{n.p50_s:.3f}", f"{n.p95_s:.3f}", f"{n.prompt_tokens}/{n.completion_tokens}", energy, cost)
            if cascaded:
                row += ("-" if n.escalation_rate is None else f"{n.escalation_rate:.0%}",)
            if failed_over:
                row += (f"{n.retries}/{n.fallbacks}",)
            out.append(row)
        return out

    def table(self) -> Any:
        """The report as a rich Table (what a terminal shows)."""
        from rich.table import Table

        t = Table(title=self.title(), caption=self.caption(), title_justify="left", caption_justify="left")
        for col, justify in self.columns():
            t.add_column(col, justify=justify)  # type: ignore[arg-type]
        for row in self.rows():
            t.add_row(*row)
        return t

    def __rich__(self) -> Any:
        return self.table()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=160, color_system=None, force_terminal=False, force_jupyter=False)
        with console.capture() as cap:
            console.print(self.table())
        return "\n".join(line.rstrip() for line in cap.get().splitlines())

    def _repr_html_(self) -> str:
        from html import escape

        columns = self.columns()
        head = "".join(f'<th style="text-align:{j}">{escape(c)}</th>' for c, j in columns)
        body = "".join("<tr>" + "".join(f'<td style="text-align:{j}">{escape(v)}</td>'
                                        for v, (_, j) in zip(row, columns, strict=True)) + "</tr>"
                       for row in self.rows())
        return (f"<table><caption>{escape(self.title())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table><p><small>{escape(self.caption()).replace(chr(10), '<br>')}</small></p>")
