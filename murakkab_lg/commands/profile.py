"""`murakkab profile [--models ... | --config FILE [--deployments ...]] [--intents ...] [--evals ...] [--quick]
[--out PATH]`."""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from murakkab_lg.catalog.embedded import measured_profile_path, pulled_models
from murakkab_lg.catalog.models import embedded_model
from murakkab_lg.errors import ConfigError

# Modules that register eval sets of their own when imported (the demo's `triage.*` sets).
# Missing ones are skipped: the demo may not be installed in every build.
DEFAULT_EVAL_MODULES = ("murakkab_lg.demo.evals", "murakkab_lg.demo.tasks")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Measure quality per intent (eval sets), speed (prefill, TTFT, time per output token, "
                    "throughput by concurrency), estimated energy and memory of the embedded models on this "
                    "machine, and write a profile file the planner uses. Interrupted runs resume.",
    )
    p.add_argument("--models", nargs="+", metavar="MODEL", help="names or tiers (default: every pulled model)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="profile the deployments of this runtime/serve config (any engine kind: openai, api, "
                        "vllm, llamacpp); the profile goes to its first `profiles` file unless --out is given")
    p.add_argument("--deployments", nargs="+", metavar="NAME", help="with --config: only these deployments")
    p.add_argument("--intents", nargs="+", metavar="INTENT", help="only eval sets for these intents")
    p.add_argument("--evals", nargs="+", metavar="PATTERN",
                   help="eval set names or globs (default: every registered set, e.g. core.* and triage.*)")
    p.add_argument("--eval-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE first so it can register eval sets (repeatable)")
    p.add_argument("--quick", action="store_true", help="5 items per set, concurrency 1,4, default settings only")
    p.add_argument("--out", type=Path, help=f"profile file to write (default: {measured_profile_path()})")
    p.add_argument("--items", type=int, help="items per eval set (default: all; 5 with --quick)")
    p.add_argument("--concurrency", type=_ints, help="load levels, e.g. 1,2,4,8")
    p.add_argument("--threads", type=_ints, help="llama.cpp thread counts to sweep, e.g. 1,2")
    p.add_argument("--parallel", type=_ints, help="llama.cpp parallel slots to sweep, e.g. 1,4")
    p.add_argument("--fresh", action="store_true", help="ignore a checkpoint from an interrupted run")
    return p


def _select_sets(args: argparse.Namespace) -> list[str]:
    from murakkab_lg.evals import eval_set_names, get_eval_set

    for module in (*DEFAULT_EVAL_MODULES, *args.eval_module):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if module in args.eval_module or e.name != module:
                raise ConfigError(f"cannot import eval module {module!r}: {e}") from None
    names = list(eval_set_names())
    if args.evals:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in args.evals)]
    if args.intents:
        names = [n for n in names if get_eval_set(n).intent in args.intents]
    if not names and (args.evals or args.intents):
        raise ConfigError(
            f"no registered eval set matches --evals {args.evals or '*'} --intents {args.intents or '*'}; "
            f"registered: {', '.join(eval_set_names())}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    from murakkab_lg.profiling import ProfileOptions, RichReporter, quality_table, run_profile, speed_table

    console = Console(width=max(Console().width, 160))
    if getattr(args, "config", None) is not None:
        return _run_config(args, console)
    models = [embedded_model(m).name for m in args.models] if args.models else pulled_models()
    if not models:
        raise ConfigError("no embedded model is downloaded. To fix: run `murakkab models pull --all`.")
    out = args.out or measured_profile_path()
    opts = ProfileOptions.make(
        models=models, eval_sets=_select_sets(args), out=out, quick=args.quick,
        command=_command(args),
        items_per_set=args.items, concurrency=args.concurrency, threads=args.threads, parallel=args.parallel,
        fresh=args.fresh,
    )
    console.print(f"profiling {', '.join(models)} with {len(opts.eval_sets)} eval sets "
                  f"({'quick' if opts.quick else 'full'}); checkpoint {opts.checkpoint_path}")
    t0 = time.perf_counter()
    with RichReporter(console) as rep:
        result = run_profile(opts, reporter=rep)
    measured = set(models)
    rows = [p for p in result.profiles if p.model in measured]
    if rows:
        console.print(quality_table(rows, title=f"quality per intent, measured on {rows[0].hardware}"))
        console.print(speed_table(rows))
    console.print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _command(args: argparse.Namespace) -> str:
    if sys.argv[1:2] == ["profile"]:
        return shlex.join(["murakkab", "profile", *sys.argv[2:]])
    return "murakkab profile " + shlex.join(_argv(args))


def _run_config(args: argparse.Namespace, console: Console) -> int:
    """Profile the deployments a config file names, whatever their engine kind."""
    from murakkab_lg.profiling import ProfileOptions, RichReporter, quality_table, run_profile, speed_table
    from murakkab_lg.runtime.config import load_config, load_factory

    cfg = load_config(args.config)
    if not cfg.deployments:
        raise ConfigError(f"{args.config} lists no `deployments`. To fix: add them, or profile the embedded "
                          "models with `murakkab profile --models ...`.")
    deps = list(cfg.deployments)
    if args.deployments:
        unknown = sorted(set(args.deployments) - {d.name for d in deps})
        if unknown:
            raise ConfigError(f"--deployments names unknown deployments {unknown}; {args.config} has "
                              f"{', '.join(d.name for d in deps)}")
        deps = [d for d in deps if d.name in args.deployments]
    out = args.out or (cfg.profiles[0] if cfg.profiles else args.config.with_name("profiles.json"))
    opts = ProfileOptions.make(
        models=(), deployments=tuple(deps), eval_sets=_select_sets(args), out=out, quick=args.quick,
        command=_command(args), items_per_set=args.items, concurrency=args.concurrency, fresh=args.fresh)
    factory = load_factory(cfg)
    console.print(f"profiling {', '.join(d.name for d in deps)} with {len(opts.eval_sets)} eval sets "
                  f"({'quick' if opts.quick else 'full'}); checkpoint {opts.checkpoint_path}")
    t0 = time.perf_counter()
    with RichReporter(console) as rep:
        result = run_profile(opts, reporter=rep, **({"engine_factory": factory} if factory else {}))
    rows = [p for p in result.profiles if p.deployment in {d.name for d in deps}]
    console.print(quality_table(rows, title="quality per intent"))
    console.print(speed_table(rows, title="speed (measured from this machine), energy, memory"))
    console.print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """A command line equivalent to `args`, for provenance when not run from the CLI."""
    out: list[str] = []
    if getattr(args, "config", None) is not None:
        out += ["--config", str(args.config)]
    for flag in ("models", "deployments", "intents", "evals"):
        if getattr(args, flag, None):
            out += [f"--{flag}", *getattr(args, flag)]
    if args.quick:
        out.append("--quick")
    if getattr(args, "items", None):
        out += ["--items", str(args.items)]
    if args.out:
        out += ["--out", str(args.out)]
    return out
