"""The one report module: a plan as a rich table and as JSON, with the rejected alternatives.

Policies return values and never print; everything that turns a `Plan` into words lives here,
so the CLI, the demo and a notebook show the same thing. For every node: the chosen deployment
(and any cascade escalation), its predicted quality, latency, energy and cost, why it was
chosen, and the best alternatives it beat with the reason each lost (quality floor, SLO,
capacity, objective). Workflow totals add the end-to-end latency along the critical path when
the workflow (its edges) is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from murakkab_lg.spec import Plan, Prediction, Workflow

__all__ = ("plan_json", "plans_json", "quality_sources_note", "render", "totals", "write_json")


def totals(plan: Plan, workflow: Workflow | None = None) -> dict[str, Any]:
    """Workflow-level predictions: sums of energy and cost, lowest quality, end-to-end latency.

    End-to-end latency is the critical path when `workflow` is given, else the sum over nodes
    (an upper bound: it treats every node as sequential).
    """
    preds = {c.node: c.prediction for c in plan.choices}
    out: dict[str, Any] = {
        "energy_j": sum(p.energy_j for p in preds.values()),
        "cost_usd": sum(p.cost_usd for p in preds.values()),
        "min_quality": min((p.quality for p in preds.values() if p.quality is not None), default=None),
    }
    if workflow is not None:
        from murakkab_lg.policies._graph import dag_of

        dag = dag_of(workflow)
        path, span = dag.critical_path([preds[n].latency_s for n in dag.names])
        out.update(latency_s=span, critical_path=path, latency_slo_s=workflow.latency_slo_s)
    else:
        out.update(latency_s=sum(p.latency_s for p in preds.values()), critical_path=None)
    return out


_SOURCE_WORDS = {"published": "model-card benchmarks", "measured": "in-house evals",
                 "synthetic": "synthetic figures"}


def quality_sources_note(plan: Plan, source_kind: Mapping[str, str], *, top: int | None = 3) -> str | None:
    """A warning when the quality figures a plan compared come from sources that are not one scale.

    `source_kind` maps deployment -> its profile's provenance kind (`published`: model-card
    benchmark scores; `measured`: scores from `murakkab profile`'s eval sets). Looks at each node's
    choice and the alternatives shown (`top`); None when they share one source.
    """
    by_kind: dict[str, list[str]] = {}
    for c in plan.choices:
        preds = [(c.deployment, c.prediction), *((r.deployment, r.prediction) for r in c.rejected[:top])]
        for name, p in preds:
            kind = source_kind.get(name)
            if p.quality is not None and kind is not None and name not in by_kind.setdefault(kind, []):
                by_kind[kind].append(name)
    if len(by_kind) < 2:
        return None
    parts = "; ".join(f"{_SOURCE_WORDS.get(k, k)} for {', '.join(v)}" for k, v in sorted(by_kind.items()))
    return (f"quality figures here come from different sources, which are not one scale: {parts}. "
            "To compare on one scale: measure them all with `murakkab profile` (with --profiles), or "
            "plan over one source (--candidates embedded or published).")


def plan_json(plan: Plan, workflow: Workflow | None = None, *, top: int | None = None,
              notes: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-ready dict: the plan, its totals, its notes, and per node the best `top` rejected
    alternatives."""
    data = plan.model_dump(mode="json")
    if top is not None:
        for node in data["choices"]:
            node["rejected"] = node["rejected"][:top]
    data["totals"] = totals(plan, workflow)
    data["notes"] = list(notes)
    return data


def plans_json(plans: Sequence[Plan], workflows: Sequence[Workflow | None] | None = None,
               *, top: int | None = None, notes: Sequence[Sequence[str]] | None = None) -> list[dict[str, Any]]:
    wfs = list(workflows) if workflows is not None else [None] * len(plans)
    each = list(notes) if notes is not None else [()] * len(plans)
    return [plan_json(p, w, top=top, notes=n) for p, w, n in zip(plans, wfs, each, strict=True)]


def write_json(path: str | Path, plans: Sequence[Plan], workflows: Sequence[Workflow | None] | None = None,
               *, top: int | None = None, notes: Sequence[Sequence[str]] | None = None) -> None:
    """Write one plan as an object, several as a list; `-` writes to stdout."""
    data = plans_json(plans, workflows, top=top, notes=notes)
    text = json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n"
    if str(path) == "-":
        print(text, end="")
    else:
        Path(path).write_text(text)


def _q(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _money(x: float) -> str:
    return "0" if x == 0 else f"{x:.2e}"


def render(plan: Plan, workflow: Workflow | None = None, *, console: Console | None = None, top: int = 3,
           notes: Sequence[str] = ()) -> None:
    """Print the plan: a table with each node's choice and its best `top` rejected alternatives
    (dimmed, with the constraint that rejected them), then the reasons in words, then totals and
    `notes` (what the reader must know to trust the figures, e.g. mixed quality sources)."""
    console = console or Console()
    t = totals(plan, workflow)
    shown = [(c, c.rejected[:top]) for c in plan.choices]
    priced = any(p.cost_usd for c, rs in shown for p in (c.prediction, *(r.prediction for r in rs)))
    # Deployment names never wrap (folding them letter by letter made them unreadable at 80
    # columns); the node heads its own row instead of taking a column, and cost shows only
    # when something has a price.
    names = [f"✓ {c.deployment}{''.join(f' → {e}' for e in c.escalation)}" for c in plan.choices]
    names += [f"✗ {r.deployment}" for _, rs in shown for r in rs]
    table = Table(title=f"plan {plan.workflow!r}: policy {plan.policy}, objective {plan.objective.value}")
    table.add_column("node / deployment", no_wrap=True, min_width=min(max(map(len, names), default=10), 60),
                     overflow="ellipsis")
    cols = ["quality", "latency s", "energy J", *(["cost $"] if priced else [])]
    for col in cols:
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("verdict")

    def cells(p: Prediction, style: str) -> list[str]:
        got = [_q(p.quality), f"{p.latency_s:.3f}", f"{p.energy_j:.2f}", *([_money(p.cost_usd)] if priced else [])]
        return [f"[{style}]{x}[/]" for x in got]

    for c, rs in shown:
        table.add_row(f"[bold]{escape(c.node)}[/]", *[""] * len(cols), "")
        dep = escape(c.deployment + "".join(f" → {e}" for e in c.escalation))
        table.add_row(f"[green]✓ {dep}[/]", *cells(c.prediction, "default"), "[green]chosen[/]")
        for r in rs:
            table.add_row(f"[dim]✗ {escape(r.deployment)}[/]", *cells(r.prediction, "dim"), f"[dim]{r.reason}[/]")
        table.add_section()
    console.print(table)
    for c in plan.choices:
        console.print(f"[bold]{escape(c.node)}[/] → {escape(c.deployment)}: {escape(c.reason)}", highlight=False)
        for r in c.rejected[:top]:
            console.print(f"  [dim]✗ {escape(r.deployment)}: {r.reason}: {escape(r.detail)}[/]", highlight=False)
    e2e = f"end-to-end latency {t['latency_s']:.3f} s"
    if t.get("critical_path"):
        e2e += f" (critical path {' -> '.join(t['critical_path'])}"
        e2e += f"; SLO {t['latency_slo_s']:g} s)" if t.get("latency_slo_s") is not None else ")"
    console.print(f"total energy {t['energy_j']:.2f} J, {e2e}, cost ${t['cost_usd']:.2e}, "
                  f"lowest node quality {_q(t['min_quality'])}", highlight=False)
    deps = "; ".join(f"{d.name} ({d.engine.label()}, {d.placement.device}"
                     + (f" gpus {','.join(map(str, d.placement.gpus))}" if d.placement.gpus else "") + ")"
                     for d in plan.deployments)
    console.print(f"deployments: {escape(deps)}", highlight=False)
    if plan.profile_source:
        console.print(f"[dim]profiles: {escape(plan.profile_source)}[/]", highlight=False)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
