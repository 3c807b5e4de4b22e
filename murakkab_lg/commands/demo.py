"""`murakkab demo [--quick] [--pairs N] [--json PATH] [--png FILE]`: ticket triage, static-largest vs planned."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from murakkab_lg.catalog.embedded import pulled_models
from murakkab_lg.catalog.models import EMBEDDED_LADDER
from murakkab_lg.errors import ConfigError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the ticket-triage demo on the embedded CPU "
                                "engines: the largest model everywhere (static) and the runtime's plan, in "
                                "alternating pairs over the held-out tickets.")
    p.add_argument("--quick", action="store_true", help="10 held-out tickets and one pair (about a sixth of the time)")
    p.add_argument("--items", type=int, default=None,
                   help="number of held-out tickets (default all 20; overrides --quick)")
    p.add_argument("--pairs", type=int, default=None,
                   help="static/planned pairs, run in alternating order (default 3; 1 with --quick)")
    p.add_argument("--concurrency", type=int, default=4, help="tickets in flight at once (default 4)")
    p.add_argument("--policy", default="greedy", help="planning policy for the planned run (default greedy)")
    p.add_argument("--json", type=Path, default=None, help="also save the results as JSON here")
    p.add_argument("--png", type=Path, default=None, help="also draw per-node latency and energy, static vs "
                   "planned, to this file; needs the `plot` extra")
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
    items = args.items or (10 if args.quick else None)
    pairs = args.pairs or (1 if args.quick else 3)
    if pairs < 1:
        raise ConfigError(f"--pairs {pairs}: need at least one static/planned pair")
    with Runtime.embedded(policy=args.policy) as runtime, \
            console.status(f"running {pairs} static/planned pair(s) in alternating order ..."):
        result = run_demo(runtime, items=items, concurrency=args.concurrency, pairs=pairs)
    print_demo(result, console)
    if args.json:
        args.json.write_text(result.model_dump_json(indent=1) + "\n")
        console.print(f"saved {args.json}")
    if args.png:
        from murakkab_lg.figures import run_figure, save

        save(run_figure({"static": result.static.nodes, "planned": result.planned.nodes}), args.png)
        console.print(f"saved {args.png}")
    return 0 if all(r.all_quality_ok for r in result.planned_runs) else 1
