"""Rich tables for a DemoResult: one row per node per run, then totals and ratios."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from murakkab_lg.demo.run import DemoResult, RunResult, Spread

__all__ = ("print_demo",)


def _run_table(title: str, run: RunResult) -> Table:
    t = Table(title=title, title_justify="left")
    for col, just in (("node", "left"), ("model", "left"), ("engine", "left"), ("quality", "right"),
                      ("floor", "right"), ("ok", "center"), ("p50 s", "right"), ("calls", "right"),
                      ("tokens", "right"), ("J est.", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for n in run.nodes:
        t.add_row(n.name, n.model, n.engine, f"{n.quality:.2f}",
                  "-" if n.min_quality is None else f"{n.min_quality:.2f}",
                  "[green]yes[/]" if n.quality_ok else "[red]NO[/]", f"{n.p50_s:.2f}", str(n.calls),
                  f"{n.tokens:,}", f"{n.energy_j:,.0f}")
    return t


def _spread(s: Spread, fmt: str) -> str:
    return f"{s.median:{fmt}} ({s.low:{fmt}}-{s.high:{fmt}})"


def print_demo(result: DemoResult, console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal and console.width < 120:  # piped output: don't fold the tables
        console.width = 120
    console.print(f"[bold]murakkab demo[/]: ticket triage, {result.items} {result.split} tickets, concurrency "
                  f"{result.concurrency}, {result.pairs} pair(s) in alternating order, engines share "
                  f"{result.cores} cores, {result.machine}, {result.date}")
    console.print(f"profiles: {result.profile_source}")
    console.print(_run_table(f"static ({result.static.nodes[0].model} everywhere; median run)", result.static))
    console.print(_run_table(f"planned ({result.planned.policy}; median run)", result.planned))
    totals = Table(title=f"totals over {result.pairs} pair(s): median (low-high)", title_justify="left")
    for col in ("run", "wall s", "energy J (estimated)", "all floors met in every run"):
        totals.add_column(col, justify="right" if col != "run" else "left")
    for name, wall, energy, runs in (("static", result.static_wall_s, result.static_energy_j, result.static_runs),
                                     ("planned", result.planned_wall_s, result.planned_energy_j,
                                      result.planned_runs)):
        totals.add_row(name, _spread(wall, ".1f"), _spread(energy, ",.0f"),
                       "yes" if all(r.all_quality_ok for r in runs) else "[red]NO[/]")
    totals.add_row("static / planned (medians)", f"{result.speedup:.2f}x", f"{result.energy_ratio:.2f}x", "")
    totals.add_row("per pair", ", ".join(f"{x:.2f}x" for x in result.pair_speedups),
                   ", ".join(f"{x:.2f}x" for x in result.pair_energy_ratios), "")
    console.print(totals)
    console.print("run order: " + ", ".join(result.order))
    console.print(f"energy is estimated: engine CPU-seconds x {result.watts_per_core:.2f} W per busy core "
                  f"({result.watts_source})")
