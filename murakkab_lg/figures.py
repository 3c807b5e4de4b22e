"""Pictures of plans and runs, for people who would rather look than read a table.

Two figures, both matplotlib `Figure` objects (no pyplot state, so they are safe in a CLI, a
server thread or a notebook, where they show inline):

- `plan_figure(plan, workflow)`: the workflow's DAG laid out by topological level (left to
  right in execution order, no graphviz needed), each node boxed with the deployment the plan
  gave it, its predicted quality against the node's floor, and its predicted latency and energy
  per workflow run; arrows are the workflow's edges. The title carries the totals.
- `run_figure({"static": nodes, "planned": nodes})`: per node, p50 latency per call and energy
  over the run's calls, one bar per run side by side, from telemetry summaries (`NodeSummary`,
  what `RunReport.nodes` and `summarize(records)` give).

matplotlib is an optional extra (`pip install 'murakkab-lg[plot]'`), imported only when a figure
is drawn. This module reads only spec and telemetry types: it draws what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murakkab_lg.errors import ConfigError
from murakkab_lg.spec import NodeChoice, Plan, Workflow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from murakkab_lg.runtime.telemetry import NodeSummary

__all__ = ("levels", "plan_figure", "run_figure", "save")

_BOX_W, _BOX_H = 0.78, 0.62  # node box size in layout units (one level wide, one row tall)


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("figures need matplotlib, which is not installed. To fix: "
                          "pip install 'murakkab-lg[plot]'.") from None
    return Figure


def levels(workflow: Workflow, names: Sequence[str] | None = None) -> dict[str, int]:
    """Topological level of each node: 0 for sources, else one more than its deepest predecessor.

    `names` adds nodes that the workflow lacks (level 0). A cycle is an error naming its nodes.
    """
    order = [n.name for n in workflow.nodes] + [n for n in names or () if n not in {w.name for w in workflow.nodes}]
    preds: dict[str, list[str]] = {n: [] for n in order}
    for src, dst in dict.fromkeys(workflow.edges):
        preds[dst].append(src)
    level: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(n: str) -> int:
        if n in level:
            return level[n]
        if n in visiting:
            raise ConfigError(f"workflow {workflow.name!r} has a cycle through {n!r}; a plan figure needs a DAG. "
                              "To fix: fold the loop into `expected_iterations` (extract() does this).")
        visiting.add(n)
        level[n] = 1 + max((depth(p) for p in preds[n]), default=-1)
        visiting.discard(n)
        return level[n]

    for n in order:
        depth(n)
    return level


def _critical_path_s(plan: Plan, workflow: Workflow) -> float:
    """End-to-end predicted latency: the longest source-to-sink path (parallel branches overlap)."""
    lat = {c.node: c.prediction.latency_s for c in plan.choices}
    preds: dict[str, list[str]] = {n: [] for n in lat}
    for src, dst in workflow.edges:
        if src in lat and dst in lat:
            preds[dst].append(src)
    finish: dict[str, float] = {}
    for n in sorted(lat, key=levels(workflow, list(lat)).__getitem__):
        finish[n] = lat[n] + max((finish[p] for p in preds[n]), default=0.0)
    return max(finish.values(), default=0.0)


def _box_text(c: NodeChoice, floor: float | None) -> tuple[str, bool]:
    p = c.prediction
    dep = c.deployment + "".join(f" → {e}" for e in c.escalation)
    if p.quality is None:
        quality, ok = "quality not measured", floor is None
    elif floor is None:
        quality, ok = f"quality {p.quality:.2f} (no floor)", True
    else:
        ok = p.quality >= floor - 1e-9
        quality = f"quality {p.quality:.2f} {'≥' if ok else '<'} floor {floor:.2f}"
    return f"{dep}\n{quality}\n{p.latency_s:.2f} s · {p.energy_j:.1f} J", ok


def _palette(names: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """One colour per deployment, by sorted name: the same deployments get the same colours in every panel
    and in both figures."""
    import matplotlib as mpl

    palette = mpl.colormaps["tab10"].colors
    return {d: tuple(palette[i % len(palette)][:3]) for i, d in enumerate(sorted(set(names)))}


def _draw_plan(ax: Axes, plan: Plan, workflow: Workflow | None, colour: Mapping[str, tuple[float, ...]]) -> None:
    from matplotlib.patches import FancyBboxPatch, Patch

    wf = workflow or Workflow(name=plan.workflow, nodes=())
    names = [c.node for c in plan.choices]
    level = levels(wf, names)
    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(level[n], []).append(n)
    rows = max(len(col) for col in columns.values())
    pos = {n: (float(lv), (len(col) - 1) / 2 - i) for lv, col in columns.items() for i, n in enumerate(col)}
    floors = {n.name: n.intent.min_quality for n in wf.nodes}

    skips = False
    for src, dst in dict.fromkeys(wf.edges):
        if src not in pos or dst not in pos:
            continue
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        if x1 - x0 > 1 and any(abs(yy - y0) < 1e-9 or abs(yy - y1) < 1e-9
                               for n, (xx, yy) in pos.items() if x0 < xx < x1):
            # An edge that skips a level would cross the boxes between: arc it over their tops.
            skips = True
            start, end, style = (x0, y0 + _BOX_H / 2), (x1, y1 + _BOX_H / 2), "arc3,rad=-0.18"
        else:
            start, end, style = (x0 + _BOX_W / 2, y0), (x1 - _BOX_W / 2, y1), "arc3,rad=0"
        ax.annotate("", xy=end, xytext=start, arrowprops={
            "arrowstyle": "-|>", "color": "0.35", "lw": 1.2, "shrinkA": 0, "shrinkB": 2, "connectionstyle": style})
    for c in plan.choices:
        x, y = pos[c.node]
        text, ok = _box_text(c, floors.get(c.node))
        ax.add_patch(FancyBboxPatch(
            (x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0.0,rounding_size=0.06",
            facecolor=(*colour[c.deployment][:3], 0.22), edgecolor="0.2" if ok else "red", lw=1.0 if ok else 2.5))
        ax.text(x, y + _BOX_H * 0.3, c.node, ha="center", va="center", fontsize=9, fontweight="bold")
        ax.text(x, y - _BOX_H * 0.1, text, ha="center", va="center", fontsize=8.5, linespacing=1.4)
    n_levels = max(columns) + 1
    ax.set_xlim(-0.5, n_levels - 0.5)
    ax.set_ylim(-rows / 2 - 0.05, rows / 2 + (0.55 if skips else 0.05))
    ax.set_xticks(range(n_levels), [f"stage {i + 1}" for i in range(n_levels)])
    ax.set_yticks([])
    ax.set_xlabel("execution order (topological level); boxes: predicted per workflow run")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Patch(facecolor=(*colour[d.name][:3], 0.4), edgecolor="0.2",
                                 label=f"{d.name} ({d.engine.label()}, {d.placement.device})")
               for d in plan.deployments if d.name in {c.deployment for c in plan.choices}]
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=1 if n_levels < 3 else min(2, len(handles)),
                  fontsize=8, frameon=False, title="deployment", title_fontsize=8)
    energy = sum(c.prediction.energy_j for c in plan.choices)
    if workflow is not None:
        e2e = f"end-to-end {_critical_path_s(plan, workflow):.2f} s (critical path)"
        if workflow.latency_slo_s is not None:
            e2e += f", SLO {workflow.latency_slo_s:g} s"
    else:
        e2e = f"sum of node latencies {sum(c.prediction.latency_s for c in plan.choices):.2f} s"
    ax.set_title(f"plan {plan.workflow!r}: policy {plan.policy}, objective {plan.objective.value}\n"
                 f"predicted per run: {energy:.1f} J, {e2e}", fontsize=10)


def plan_figure(plan: Plan | Sequence[Plan], workflow: Workflow | Sequence[Workflow | None] | None = None) -> Figure:
    """The plan(s) as DAG pictures, one panel per plan; `workflow` gives the edges and the floors.

    Without the workflow the nodes stand in one column with no edges and no floors.
    """
    plans = [plan] if isinstance(plan, Plan) else list(plan)
    if not plans:
        raise ConfigError("plan_figure() needs at least one plan")
    wfs = [workflow] if workflow is None or isinstance(workflow, Workflow) else list(workflow)
    if len(wfs) == 1 and len(plans) > 1:
        wfs = wfs * len(plans)
    if len(wfs) != len(plans):
        raise ConfigError(f"plan_figure() got {len(plans)} plans but {len(wfs)} workflows; pass one per plan")
    Figure = _figure_class()
    sizes = []
    for p, w in zip(plans, wfs, strict=True):
        lv = levels(w or Workflow(name=p.workflow, nodes=()), [c.node for c in p.choices])
        per_level = [list(lv.values()).count(i) for i in set(lv.values())]
        sizes.append((max(lv.values()) + 1, max(per_level)))
    width = max(6.5, 2.8 * max(s[0] for s in sizes))
    heights = [1.9 + 1.1 * s[1] for s in sizes]
    fig = Figure(figsize=(width, sum(heights) + 0.9 * len(plans)), layout="constrained")
    axes = fig.subplots(len(plans), 1, squeeze=False, height_ratios=heights)[:, 0]
    colour = _palette([c.deployment for p in plans for c in p.choices])
    for ax, p, w in zip(axes, plans, wfs, strict=True):
        _draw_plan(ax, p, w, colour)
    return fig


def _stats(n: Any) -> tuple[str, float, float | None, str, str]:
    """(node, p50 s, energy J, energy label, deployment) from a NodeSummary, or any row with the
    same fields that names its node `name` and its deployment `model` (the demo's NodeResult)."""
    name = getattr(n, "node", None) or n.name
    deps = getattr(n, "deployments", None) or (getattr(n, "model", ""),)
    return name, float(n.p50_s), n.energy_j, str(n.energy_label), ", ".join(deps)


def run_figure(runs: Mapping[str, Sequence[NodeSummary]], *, title: str | None = None) -> Figure:
    """Per node p50 latency per call (s) and energy over all the run's calls (J), one bar per run.

    `runs` maps a run's label ("static", "planned") to its per-node summaries, e.g.
    `{"planned": app.last_report().nodes}`. Each bar names the deployment that served the node.
    Nodes with no energy reading get no energy bar.
    """
    if not runs:
        raise ConfigError("run_figure() needs at least one run, e.g. {'planned': app.last_report().nodes}")
    Figure = _figure_class()
    from matplotlib.patches import Patch

    data = {label: {s[0]: s for s in map(_stats, nodes)} for label, nodes in runs.items()}
    nodes = list(dict.fromkeys(n for rows in data.values() for n in rows))
    labels = sorted({s[3] for rows in data.values() for s in rows.values() if s[2] is not None}) or ["no reading"]
    deps = list(dict.fromkeys(st[4] for rows in data.values() for st in rows.values()))
    colour = _palette(deps)
    hatches = ("//", "", "..", "xx", "\\\\", "++")
    fig = Figure(figsize=(max(7.0, 0.9 * len(nodes) * len(runs) + 3.0), 4.8), layout="constrained")
    ax_lat, ax_energy = fig.subplots(1, 2)
    width = 0.8 / len(runs)
    for i, rows in enumerate(data.values()):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j, n in enumerate(nodes) if n in rows]
        present = list(zip(xs, (rows[n] for n in nodes if n in rows), strict=True))
        for ax, value, fmt in ((ax_lat, 1, "{:.2f}"), (ax_energy, 2, "{:.1f}")):
            shown = [(x, st) for x, st in present if st[value] is not None]
            if shown:
                bars = ax.bar([x for x, _ in shown], [st[value] for _, st in shown], width,
                              color=[colour[st[4]] for _, st in shown], edgecolor="0.2", hatch=hatches[i % 6])
                ax.bar_label(bars, [fmt.format(st[value]) for _, st in shown], fontsize=7, padding=1)
    for ax, ylabel in ((ax_lat, "p50 latency per call (s)"),
                       (ax_energy, f"energy, all calls of the run (J, {'/'.join(labels)})")):
        ax.set_xticks(range(len(nodes)), nodes, rotation=20 if len(nodes) > 4 else 0)
        ax.set_xlabel("node")
        ax.set_ylabel(ylabel)
        ax.margins(y=0.08)
    handles = [Patch(facecolor="white", edgecolor="0.2", hatch=hatches[i % 6], label=f"{label} (bar {i + 1})")
               for i, label in enumerate(runs)]
    handles += [Patch(facecolor=colour[d], edgecolor="0.2", label=d) for d in deps]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="run / deployment",
               title_fontsize=8)
    fig.suptitle(title or "per node: " + " vs ".join(runs), fontsize=10)
    return fig


def save(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Write `fig` as PNG (or whatever format the suffix names) and return the path."""
    path = Path(path)
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        raise ConfigError(f"cannot write the figure to {path}: {e}") from None
    return path
