"""`murakkab status [--url URL] [--api-key KEY] [--json]`: a running server's live state."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.table import Table

from murakkab_lg.integrations.status import fetch_status
from murakkab_lg.runtime.status import RuntimeStatus

__all__ = ("build_parser", "run")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Show a running `murakkab serve`'s live state: deployments "
                                "and replicas (load, latency, errors), nodes (tokens, calls per run, escalations), "
                                "workflows (arrival rate, drift) and re-plans, over the server's live window.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=(os.environ.get("MURAKKAB_API_KEYS") or "").split(",")[0].strip() or None,
                   help="bearer key, when the server requires one (default: the first of $MURAKKAB_API_KEYS)")
    p.add_argument("--json", action="store_true", help="print the raw status JSON")
    return p


def _s(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def tables(st: RuntimeStatus) -> list[Table]:
    deps = Table(title=f"deployments (last {st.window_s:g} s)")
    for col in ("deployment", "engine", "running", "in flight", "queued", "calls", "errors", "p50 s", "p95 s",
                "TTFT s", "TPOT s"):
        deps.add_column(col, justify="left" if col in ("deployment", "engine") else "right")
    for d in st.deployments.values():
        w = d.window
        deps.add_row(d.deployment, d.engine, "yes" if d.running else "no", str(d.inflight), str(d.queued),
                     str(w.calls if w else 0), f"{w.error_rate:.0%}" if w else "-", _s(w and w.p50_s),
                     _s(w and w.p95_s), _s(w and w.ttft_p50_s), _s(w and w.tpot_p50_s, ".4f"))
    nodes = Table(title="nodes")
    for col in ("workflow", "node", "calls", "calls/s", "tokens in", "tokens out", "calls/run", "escalated",
                "served by"):
        nodes.add_column(col, justify="left" if col in ("workflow", "node", "served by") else "right")
    for n in st.nodes:
        nodes.add_row(n.workflow or "-", n.node, str(n.calls), f"{n.calls_per_s:.2f}", _s(n.mean_input_tokens, ".0f"),
                      _s(n.mean_output_tokens, ".0f"), _s(n.calls_per_run, ".2f"),
                      "-" if n.escalation_rate is None else f"{n.escalation_rate:.0%}",
                      ", ".join(f"{k} ({v})" for k, v in n.deployments.items()))
    wfs = Table(title=f"workflows ({'adaptive' if st.adaptive else 'fixed plans'})")
    for col in ("workflow", "policy", "routes", "runs/s observed", "assumed", "re-plans", "drift"):
        wfs.add_column(col, justify="right" if col in ("runs/s observed", "assumed", "re-plans") else "left")
    for w in st.workflows.values():
        obs = w.observed.arrival_rate_per_s if w.observed else None
        wfs.add_row(w.workflow, w.policy, ", ".join(f"{k}: {v}" for k, v in w.routes.items()), _s(obs, ".2f"),
                    _s(w.assumed_arrival_rate_per_s, ".2f"), str(w.replans), "; ".join(w.drift) or "none")
    out = [deps, nodes, wfs]
    if st.replans:
        rp = Table(title="re-plans")
        for col in ("workflow", "reasons", "moved", "stopped", "lost calls"):
            rp.add_column(col)
        for e in st.replans:
            rp.add_row(e.workflow, "; ".join(e.reasons),
                       ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in e.moved.items()) or "nothing",
                       ", ".join(e.stopped) or "-", str(e.lost_calls))
        out.append(rp)
    return out


def run(args: argparse.Namespace) -> int:
    st = fetch_status(args.url, api_key=args.api_key)
    console = Console()
    if args.json:
        console.print_json(st.model_dump_json())
        return 0
    for t in tables(st):
        console.print(t)
    return 0
