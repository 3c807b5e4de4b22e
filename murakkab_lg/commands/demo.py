"""`murakkab demo [--quick] [--json PATH]`: the ticket-triage workflow, static-largest vs planned."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from murakkab_lg.catalog.embedded import pulled_models
from murakkab_lg.catalog.models import EMBEDDED_LADDER
from murakkab_lg.errors import ConfigError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the ticket-triage demo on the embedded CPU "
                                "engines: first the largest model everywhere (static), then the runtime's plan.")
    p.add_argument("--quick", action="store_true", help="12 tickets instead of all 24 (about half the time)")
    p.add_argument("--items", type=int, default=None, help="number of tickets (overrides --quick)")
    p.add_argument("--concurrency", type=int, default=4, help="tickets in flight at once (default 4)")
    p.add_argument("--policy", default="greedy", help="planning policy for the planned run (default greedy)")
    p.add_argument("--json", type=Path, default=None, help="also save the results as JSON here")
    return p


def run(args: argparse.Namespace) -> int:
    from murakkab_lg.demo.report import print_demo
    from murakkab_lg.demo.run import run_demo
    from murakkab_lg.runtime import Runtime

    missing = [m.name for m in EMBEDDED_LADDER if m.name not in pulled_models()]
    if missing:
        raise ConfigError(f"the demo needs every ladder model; missing: {', '.join(missing)}. "
                          "To fix: run `murakkab models pull --all`.")
    console = Console()
    items = args.items or (12 if args.quick else None)
    with Runtime.embedded(policy=args.policy) as runtime, console.status("running static, then planned ..."):
        result = run_demo(runtime, items=items, concurrency=args.concurrency)
    print_demo(result, console)
    if args.json:
        args.json.write_text(result.model_dump_json(indent=1) + "\n")
        console.print(f"saved {args.json}")
    return 0 if result.planned.all_quality_ok else 1
