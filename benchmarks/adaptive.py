"""Fixed plan vs adaptive runtime under a load step, plus what a routing decision costs.

Setup (everything real except the "model", which is a scripted HTTP engine):

* Two deployments that both meet the node's quality floor, served by one `ScriptedServer` over
  real HTTP, whose `ServiceTime` makes an answer take `base + per_token x tokens`, at most `slots`
  calls at once (the rest wait), each slowed by `contention` per other call in service:
  `primary` (the plan's choice: lowest energy) and `alternative` (a little faster, more energy).
  Their Deployments declare llama.cpp-style `parallel` slots equal to the server's, so the
  router can count the queue (engine_factory ignores the settings: the scripted server serves).
* One node, `classify`, with a per-call latency SLO; open-loop Poisson arrivals at `rate`/s,
  then `rate x step` for `step_s`, then back (`asyncio` tasks calling `Runtime.acomplete`).
* Energy is the test engine's model, *estimated*: output tokens x the synthetic profile's J per
  token of whichever deployment served each call. No engine here draws real power.

The same arrivals (same seed) run against `Runtime(adaptive=None)` (the fixed plan: every call to
the primary) and `Runtime(adaptive=AdaptiveConfig(...))` (spill to the alternative when the
primary's predicted completion breaks the SLO). Two energy premiums for the alternative are run,
so the table shows when spilling stays within +10 % energy and when it does not.

Decision cost: `Runtime.resolve(route)` for a planned node, N times, fixed vs adaptive (the
adaptive path reads live state and runs `control.choose`), interleaved in rounds.

Run: .venv/bin/python benchmarks/adaptive.py [--rate 6] [--step 4] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.runtime import Runtime
from murakkab_lg.runtime.control import AdaptiveConfig
from murakkab_lg.spec import Deployment, Intent, LlamaCppSettings, Workflow, WorkflowNode
from murakkab_lg.testing.scripted_engine import Reply, ScriptedServer, ServiceTime, synthetic_profile
from murakkab_lg.wire import Route

SLO_S = 0.5
WORDS = 20  # output tokens per answer (the scripted server counts words)
SERVICE = {"primary": ServiceTime(base_s=0.04, per_token_s=0.004, slots=2, contention=0.1),
           "alternative": ServiceTime(base_s=0.03, per_token_s=0.003, slots=4, contention=0.1)}
INTENT = Intent("classify", min_quality=0.7, latency_slo_s=SLO_S, expected_output_tokens=WORDS,
                expected_input_tokens=20)
BODY = {"messages": [{"role": "user", "content": "label this ticket"}], "max_tokens": 64}


def _runtime(server: ScriptedServer, energy: dict[str, float], adaptive: AdaptiveConfig | None) -> Runtime:
    rows = [synthetic_profile(name, quality={"classify": q}, tpot_s=SERVICE[name].per_token_s,
                              prefill_tok_s=1e5, energy_per_output_token_j=energy[name])
            for name, q in (("primary", 0.8), ("alternative", 0.82))]
    deps = [Deployment(name=n, model=n, engine=LlamaCppSettings(parallel=SERVICE[n].slots or 1))
            for n in ("primary", "alternative")]
    return Runtime(deps, ProfileStore(rows, "synthetic (benchmarks/adaptive.py)"), adaptive=adaptive,
                   engine_factory=lambda d, _i: server.engine(d.name))


def arrivals(rate: float, step: float, phase_s: float, step_s: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    out, t = [], 0.0
    end = 2 * phase_s + step_s
    while True:
        r = rate * step if phase_s <= t < phase_s + step_s else rate
        t += rnd.expovariate(r)
        if t >= end:
            return out
        out.append(t)


async def _drive(rt: Runtime, times: list[float]) -> list[tuple[float, float, str, bool]]:
    route = Route(workflow="bench", node="label", intent=INTENT)
    results: list[tuple[float, float, str, bool]] = []

    async def one(at: float) -> None:
        t0 = time.perf_counter()
        try:
            resp = await rt.acomplete(BODY, route)
            results.append((at, time.perf_counter() - t0, resp["model"], True))
        except Exception:
            results.append((at, time.perf_counter() - t0, "-", False))

    start = time.perf_counter()
    tasks = []
    for at in times:
        delay = at - (time.perf_counter() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    return results


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] if xs else float("nan")


def run_case(energy: dict[str, float], adaptive: AdaptiveConfig | None, times: list[float], phase_s: float,
             step_s: float) -> dict[str, Any]:
    def answer(_: Any) -> Reply:
        return Reply.text(" ".join(["ok"] * WORDS))

    with ScriptedServer(answer, service=SERVICE) as server, _runtime(server, energy, adaptive) as rt:
        wf = Workflow(name="bench", nodes=(WorkflowNode(name="label", intent=INTENT),))
        rt.apply(rt.plan(wf))
        for name in ("primary", "alternative"):  # open connections before the clock starts
            rt.complete(BODY, Route(deployment=name))
        time.sleep(rt.live.fresh_s)  # and let those first (slow) samples age out
        mark = rt.telemetry.mark()
        res = asyncio.run(_drive(rt, times))
        recs = rt.telemetry.since(mark)
    lat = [r[1] for r in res if r[3]]
    in_step = [r[1] for r in res if r[3] and phase_s <= r[0] < phase_s + step_s]
    ok_slo = sum(1 for r in res if r[3] and r[1] <= SLO_S)
    joules = sum(r.completion_tokens * energy[r.deployment] for r in recs if r.ok)
    return {"calls": len(res), "errors": sum(not r[3] for r in res), "slo": ok_slo / len(res),
            "slo_step": sum(1 for x in in_step if x <= SLO_S) / max(1, len(in_step)),
            "p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "energy_j": joules,
            "spilled": sum(1 for r in res if r[2] == "alternative") / len(res)}


def decision_cost(n: int, rounds: int) -> dict[str, float]:
    """us per Runtime.resolve() of a planned node: fixed route vs live-state routing."""
    with ScriptedServer() as server:
        energy = {"primary": 0.1, "alternative": 0.13}
        fixed, adaptive = _runtime(server, energy, None), _runtime(server, energy, AdaptiveConfig(replan=False))
        wf = Workflow(name="bench", nodes=(WorkflowNode(name="label", intent=INTENT),))
        for rt in (fixed, adaptive):
            rt.apply(rt.plan(wf))
            rt.complete(BODY, Route(deployment="primary"))  # a live sample, so choose() reads an observation
        route = Route(workflow="bench", node="label", intent=INTENT)
        out: dict[str, list[float]] = {"fixed": [], "adaptive": []}
        for _ in range(rounds):
            for name, rt in (("fixed", fixed), ("adaptive", adaptive)):
                t0 = time.perf_counter()
                for _ in range(n):
                    rt.resolve(route)
                out[name].append((time.perf_counter() - t0) / n * 1e6)
        fixed.close()
        adaptive.close()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=6.0, help="base arrivals per second")
    p.add_argument("--step", type=float, default=4.0, help="load multiplier during the step")
    p.add_argument("--phase-s", type=float, default=4.0, help="seconds at the base rate before and after")
    p.add_argument("--step-s", type=float, default=6.0, help="seconds at rate x step")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--decisions", type=int, default=20000)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    times = arrivals(args.rate, args.step, args.phase_s, args.step_s, args.seed)
    cfg = AdaptiveConfig(replan=False, fresh_s=2.0)
    table = Table(title=f"load step: {args.rate:g}/s -> {args.rate * args.step:g}/s for {args.step_s:g} s -> "
                        f"{args.rate:g}/s; per-call SLO {SLO_S} s; {len(times)} calls (seed {args.seed})",
                  caption="energy: estimated, the test engine's model (output tokens x synthetic J/token); "
                          "scripted HTTP engines on a shared 2-core machine")
    for col in ("alternative's energy", "runtime", "calls in SLO", "in SLO during step", "p50 s", "p95 s",
                "energy J (est.)", "vs fixed", "spilled", "errors"):
        table.add_column(col, justify="left" if col in ("runtime", "alternative's energy") else "right")
    results = []
    for premium in (1.3, 3.0):
        energy = {"primary": 0.1, "alternative": 0.1 * premium}
        fixed = run_case(energy, None, times, args.phase_s, args.step_s)
        adaptive = run_case(energy, cfg, times, args.phase_s, args.step_s)
        for name, r in (("fixed plan", fixed), ("adaptive", adaptive)):
            extra = r["energy_j"] / fixed["energy_j"] - 1
            table.add_row(f"{premium:g}x primary", name, f"{r['slo']:.1%}", f"{r['slo_step']:.1%}",
                          f"{r['p50']:.3f}", f"{r['p95']:.3f}", f"{r['energy_j']:.1f}", f"{extra:+.1%}",
                          f"{r['spilled']:.0%}", str(r["errors"]))
            results.append({"premium": premium, "runtime": name, **r})
    cost = decision_cost(args.decisions, 5)
    console = Console()
    console.print(table)
    dc = Table(title=f"routing decision cost: Runtime.resolve() of a planned node, median of 5 x {args.decisions}")
    for col in ("fixed route us", "live-state route us", "added us"):
        dc.add_column(col, justify="right")
    dc.add_row(f"{cost['fixed']:.2f}", f"{cost['adaptive']:.2f}", f"{cost['adaptive'] - cost['fixed']:+.2f}")
    console.print(dc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": results, "decision_us": cost, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
