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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from murakkab_lg.spec import Plan, Workflow

__all__ = ("plan_json", "plans_json", "render", "totals", "write_json")


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


def plan_json(plan: Plan, workflow: Workflow | None = None, *, top: int | None = None) -> dict[str, Any]:
    """A JSON-ready dict: the plan, its totals, and per node the best `top` rejected alternatives."""
    data = plan.model_dump(mode="json")
    if top is not None:
        for node in data["choices"]:
            node["rejected"] = node["rejected"][:top]
    data["totals"] = totals(plan, workflow)
    return data


def plans_json(plans: Sequence[Plan], workflows: Sequence[Workflow | None] | None = None,
               *, top: int | None = None) -> list[dict[str, Any]]:
    wfs = list(workflows) if workflows is not None else [None] * len(plans)
    return [plan_json(p, w, top=top) for p, w in zip(plans, wfs, strict=True)]


def write_json(path: str | Path, plans: Sequence[Plan], workflows: Sequence[Workflow | None] | None = None,
               *, top: int | None = None) -> None:
    """Write one plan as an object, several as a list; `-` writes to stdout."""
    data = plans_json(plans, workflows, top=top)
    text = json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n"
    if str(path) == "-":
        print(text, end="")
    else:
        Path(path).write_text(text)


def _q(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _money(x: float) -> str:
    return "0" if x == 0 else f"{x:.2e}"


def render(plan: Plan, workflow: Workflow | None = None, *, console: Console | None = None, top: int = 3) -> None:
    """Print the plan: a table with each node's choice and its best `top` rejected alternatives
    (dimmed, with the constraint that rejected them), then the reasons in words, then totals."""
    console = console or Console()
    t = totals(plan, workflow)
    table = Table(title=f"plan {plan.workflow!r}: policy {plan.policy}, objective {plan.objective.value}")
    table.add_column("node", overflow="fold")
    table.add_column("deployment", overflow="fold")
    for col in ("quality", "latency s", "energy J", "cost $"):
        table.add_column(col, justify="right")
    table.add_column("verdict")
    for c in plan.choices:
        p = c.prediction
        dep = c.deployment + "".join(f" → {e}" for e in c.escalation)
        table.add_row(f"[bold]{c.node}[/]", f"[green]{dep}[/]", _q(p.quality), f"{p.latency_s:.3f}",
                      f"{p.energy_j:.2f}", _money(p.cost_usd), "[green]chosen[/]")
        for r in c.rejected[:top]:
            rp = r.prediction
            table.add_row("", f"[dim]✗ {r.deployment}[/]", f"[dim]{_q(rp.quality)}[/]", f"[dim]{rp.latency_s:.3f}[/]",
                          f"[dim]{rp.energy_j:.2f}[/]", f"[dim]{_money(rp.cost_usd)}[/]", f"[dim]{r.reason}[/]")
        table.add_section()
    console.print(table)
    for c in plan.choices:
        console.print(f"[bold]{c.node}[/] → {c.deployment}: {c.reason}", highlight=False)
        for r in c.rejected[:top]:
            console.print(f"  [dim]✗ {r.deployment}: {r.reason}: {r.detail}[/]", highlight=False)
    e2e = f"end-to-end latency {t['latency_s']:.3f} s"
    if t.get("critical_path"):
        e2e += f" (critical path {' -> '.join(t['critical_path'])}"
        e2e += f"; SLO {t['latency_slo_s']:g} s)" if t.get("latency_slo_s") is not None else ")"
    console.print(f"total energy {t['energy_j']:.2f} J, {e2e}, cost ${t['cost_usd']:.2e}, "
                  f"lowest node quality {_q(t['min_quality'])}", highlight=False)
    deps = "; ".join(f"{d.name} ({d.engine.label()}, {d.placement.device}"
                     + (f" gpus {','.join(map(str, d.placement.gpus))}" if d.placement.gpus else "") + ")"
                     for d in plan.deployments)
    console.print(f"deployments: {deps}", highlight=False)
    if plan.profile_source:
        console.print(f"[dim]profiles: {plan.profile_source}[/]", highlight=False)
