"""Progress and the result table: the only printing the profiler does (the runner stays quiet)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from murakkab_lg.catalog.profiles import DeploymentProfile

__all__ = ("NullReporter", "Reporter", "RichReporter", "quality_table", "speed_table")


class Reporter(Protocol):
    def task(self, description: str, total: int) -> int: ...
    def advance(self, task: int, n: int = 1) -> None: ...
    def note(self, text: str) -> None: ...


class NullReporter:
    """For library use and tests: progress goes nowhere."""

    def task(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class RichReporter:
    """A rich progress display: one bar per (deployment, phase)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def task(self, description: str, total: int) -> int:
        return self.progress.add_task(description, total=total)

    def advance(self, task: int, n: int = 1) -> None:
        self.progress.advance(task, n)

    def note(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)


def quality_table(profiles: Iterable[DeploymentProfile], title: str = "quality per intent") -> Table:
    """Mean score per intent with its 95% Wilson interval and item count."""
    rows = list(profiles)
    intents = sorted({i for p in rows for i in p.quality})
    table = Table(title=title)
    table.add_column("intent")
    for p in rows:
        table.add_column(p.deployment, justify="right")
    for i in intents:
        cells = [i]
        for p in rows:
            q = p.quality.get(i)
            cells.append(f"{q.score:.2f} [{q.ci_low:.2f}, {q.ci_high:.2f}] n={q.n}" if q else "-")
        table.add_row(*cells)
    return table


def speed_table(profiles: Iterable[DeploymentProfile], title: str = "speed, energy (estimated), memory") -> Table:
    """One row per (deployment, concurrency): what one stream sees and what the engine sustains."""
    table = Table(title=title)
    for col in ("deployment", "conc", "prefill tok/s", "TTFT s", "TPOT ms", "tok/s total", "power W",
                "mJ/out tok", "mJ/in tok", "peak RSS GB", "$/M tok in/out"):
        table.add_column(col, justify="left" if col == "deployment" else "right")
    for p in profiles:
        unknown = p.energy_label == "unknown"  # a hosted API or someone else's server: never print 0
        price = (f"{p.usd_per_input_token * 1e6:.2f}/{p.usd_per_output_token * 1e6:.2f}"
                 if p.usd_per_input_token or p.usd_per_output_token else "-")
        for k, lp in enumerate(p.load):
            table.add_row(
                p.deployment if k == 0 else "", str(lp.concurrency),
                f"{lp.prefill_tok_s:.0f}" if lp.prefill_tok_s else "-",
                f"{lp.ttft_s:.2f}" if lp.ttft_s is not None else "-",
                f"{lp.tpot_s * 1000:.1f}", f"{lp.throughput_tok_s:.1f}",
                f"{lp.power_w:.1f}" if lp.power_w is not None else "-",
                "unknown" if unknown else f"{lp.energy_per_output_token_j * 1000:.1f}",
                "unknown" if unknown else f"{lp.energy_per_input_token_j * 1000:.2f}",
                (f"{p.memory_gb:.2f}" if p.memory_gb is not None else "-") if k == 0 else "",
                price if k == 0 else "",
            )
    return table
