"""`murakkab simulate WORKFLOW --rate R[,R...] --duration S --policies static,router,greedy,milp`.

WORKFLOW is a workflow file (YAML/JSON, the `murakkab plan` format plus an optional `sim:`
section for non-LLM stages), or the name of a shipped one (`video_qa`, `codegen`). Every figure
printed is simulated from the candidates' profiles (published GPU rows by default) and says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from murakkab_lg.errors import ConfigError

__all__ = ("build_parser", "resolve_workflow", "run")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Simulate a workflow under load on profiled deployments "
                                "and compare policies (discrete-event, virtual time; every figure is simulated).")
    p.add_argument("workflow", help="workflow file (.yaml/.json) or a shipped name: video_qa, codegen")
    p.add_argument("--rate", default="5", help="workflow runs per second; a comma list sweeps (default 5)")
    p.add_argument("--duration", type=float, default=600.0, help="simulated seconds of arrivals (default 600)")
    p.add_argument("--policies", default="static,router,greedy,milp",
                   help="comma list of static, router, greedy, milp, adaptive, cascade (default: the first four)")
    p.add_argument("--slo", type=float, default=None, help="end-to-end latency SLO in seconds (overrides the file's)")
    p.add_argument("--arrivals", choices=("poisson", "bursts", "trace"), default="poisson")
    p.add_argument("--burst-factor", type=float, default=4.0, help="bursts: peak rate / base rate (default 4)")
    p.add_argument("--trace", metavar="CSV", help="arrival trace with a `time_s` column (--arrivals trace)")
    p.add_argument("--candidates", choices=("published", "embedded", "all"), default="published",
                   help="deployments to choose from (default: the published GPU rows)")
    p.add_argument("--gpu", default="H100", help="keep only GPU candidates of this kind (default H100; 'any': all)")
    p.add_argument("--profiles", action="append", default=[], metavar="FILE", help="extra profile file; may repeat")
    p.add_argument("--target-concurrency", type=float, default=64.0,
                   help="provisioning: replicas so each runs at most this many sequences on average (default 64)")
    p.add_argument("--cold-start", type=float, default=0.0, help="seconds before a replica serves (default 0)")
    p.add_argument("--usd-per-gpu-hour", type=float, default=None, help="GPU price (default: see docs/simulator.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="DIR", help="write cdf.png, energy_vs_rate.png, slo_vs_rate.png here")
    p.add_argument("--json", metavar="FILE", help="write every result as JSON")
    return p


def resolve_workflow(name: str) -> Path:
    """A path as given, or a shipped workflow by name."""
    p = Path(name)
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        if not p.is_file():
            raise ConfigError(f"workflow file {p} not found")
        return p
    from importlib import resources

    shipped = resources.files("murakkab_lg.sim") / "workflows" / f"{name}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"{name!r} is neither a .yaml/.json file nor a shipped workflow (video_qa, codegen)")
    return Path(str(shipped))


def _rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--rate {text!r}: give runs per second, e.g. 5 or 1,5,20") from None
    if not rates or any(r <= 0 for r in rates):
        raise ConfigError(f"--rate {text!r}: every rate must be > 0")
    return rates


def run(args: argparse.Namespace) -> int:
    from murakkab_lg.commands.plan import _candidates, load_workflow_file
    from murakkab_lg.sim.metrics import USD_PER_GPU_HOUR, USD_PER_GPU_HOUR_SOURCE
    from murakkab_lg.sim.scenario import POLICIES, load_sim_spec, simulate
    from murakkab_lg.sim.workload import Arrivals

    path = resolve_workflow(args.workflow)
    wfs, inventory, extra = load_workflow_file(path)
    wf, spec = wfs[0], load_sim_spec(path)
    if args.slo is not None:
        wf = wf.model_copy(update={"latency_slo_s": args.slo})
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        if p not in (*POLICIES, "cascade"):
            raise ConfigError(f"unknown policy {p!r}; valid: {', '.join((*POLICIES, 'cascade'))}")
    cands, _ = _candidates(args.candidates, args.profiles, extra, None)
    if args.gpu.lower() != "any":
        cands = tuple(c for c in cands if c.deployment.placement.device.lower() in ("cpu", args.gpu.lower()))
    if not cands:
        raise ConfigError(f"no candidate on {args.gpu}. To fix: --gpu any, or another --candidates set.")
    usd = args.usd_per_gpu_hour if args.usd_per_gpu_hour is not None else USD_PER_GPU_HOUR
    results = []
    console = Console()
    if not console.is_terminal and console.width < 160:  # piped output: don't fold the table
        console.width = 160
    cols = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*cols, console=console, transient=True) as bar:
        for rate in _rates(args.rate):
            arr = Arrivals(kind=args.arrivals, rate_per_s=rate, duration_s=args.duration,
                           burst_factor=args.burst_factor, trace_csv=args.trace)
            for pol in policies:
                task = bar.add_task(f"{pol} @ {rate:g}/s", total=args.duration)
                res, _ = simulate(pol, wf, cands, arr, sim=spec, seed=args.seed,
                                  target_concurrency=args.target_concurrency, cold_start_s=args.cold_start,
                                  usd_per_gpu_hour=usd, inventory=inventory,
                                  progress=lambda t, task=task: bar.update(task, completed=t))
                bar.update(task, completed=args.duration)
                results.append(res)
    console.print(_table(results, wf.name))
    if any(c.profile.provenance.kind == "published" for c in cands):
        from murakkab_lg.catalog.published import LOW_CONCURRENCY

        console.print(f"Published GPU profiles: load points at {', '.join(map(str, LOW_CONCURRENCY))} sequences are "
                      "fitted (below the leaderboard's smallest level), the rest published; between points, "
                      "interpolated.", highlight=False)
    price = "given" if args.usd_per_gpu_hour is not None else USD_PER_GPU_HOUR_SOURCE
    console.print(f"All figures simulated from profiles ({args.candidates} candidates); cost = GPU-hours x "
                  f"${usd:g}/GPU-h ({price}).", highlight=False)
    if args.plot:
        from murakkab_lg.sim.plots import write_plots

        for p in write_plots(results, args.plot, wf.name):
            console.print(f"wrote {p}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.model_dump() for r in results], indent=1) + "\n")
        console.print(f"wrote {args.json}")
    return 0


def _table(results: list, name: str) -> Table:  # type: ignore[type-arg]
    t = Table(title=f"{name}: simulated", title_justify="left")
    for col in ("policy", "rate/s", "done", "p50 s", "p95 s", "SLO met", "J/workflow", "GPUs", "GPU-h", "$", "$/1k wf",
                "deployments"):
        t.add_column(col, justify="left" if col in ("policy", "deployments") else "right")
    for r in results:
        deps = ", ".join(f"{d.name} x{d.replicas}" for d in r.deployments)
        slo = "-" if r.slo_attainment is None else f"{100 * r.slo_attainment:.1f}%"
        t.add_row(r.policy, f"{r.rate_per_s:g}", f"{r.completed}/{r.started}", f"{r.p50_s:.2f}", f"{r.p95_s:.2f}", slo,
                  f"{r.energy_per_workflow_j:,.0f}", str(r.gpus), f"{r.gpu_hours:.2f}", f"{r.cost_usd:.2f}",
                  f"{r.cost_per_1k_workflows_usd:.2f}", deps)
    return t
