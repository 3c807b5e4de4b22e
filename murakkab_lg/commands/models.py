"""`murakkab models [list|pull NAME...|pull --all]`."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from murakkab_lg.catalog import EMBEDDED_LADDER, cache_dir
from murakkab_lg.catalog.pull import model_path, pull
from murakkab_lg.errors import ConfigError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="List or pull the embedded GGUF models "
                                "(cache: $MURAKKAB_CACHE or $XDG_CACHE_HOME/murakkab-lg).")
    sub = p.add_subparsers(dest="action")
    sub.add_parser("list", help="show the ladder and what is downloaded")
    pl = sub.add_parser("pull", help="download, assemble and verify models")
    pl.add_argument("names", nargs="*", help="model names or tiers (tiny, small, large)")
    pl.add_argument("--all", action="store_true", help="every ladder model")
    return p


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.action == "pull":
        if not args.names and not args.all:
            raise ConfigError("name the models to pull (e.g. `murakkab models pull tiny small`) or pass --all")
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=console) as prog:
            tasks: dict[str, int] = {}

            def report(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = prog.add_task(name, total=total)
                prog.update(tasks[name], completed=done)

            paths = pull([] if args.all else args.names, progress=report)
        for p in paths:
            console.print(f"verified {p}")
        return 0
    table = Table(title=f"embedded models (cache {cache_dir()})")
    for col in ("tier", "name", "params", "quant", "licence", "size", "downloaded"):
        table.add_column(col, no_wrap=True)
    for m in EMBEDDED_LADDER:
        assert m.source is not None
        path = model_path(m)
        ok = path.is_file() and path.stat().st_size == m.source.size_bytes
        table.add_row(m.tier or "", m.name, f"{m.params_b:g}B", m.quantization, m.license,
                      f"{m.source.size_bytes / 1e6:,.0f} MB", "yes" if ok else "no")
    console.print(table)
    return 0
