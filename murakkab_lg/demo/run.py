"""Run the triage demo: the same graph over the same tickets, static-largest vs planned.

Fidelity rules, because the comparison is only worth what its setup is:
- the tickets are the held-out split; the shipped profile measured the triage intents on the
  calibration split, so a floor the planner trusted is checked on items it never saw;
- static and planned run in alternating order (static first, then planned first, ...) for several
  pairs, and the result reports the median and the spread, not one lucky run;
- the engines of a run share the machine's cores (each llama.cpp engine gets cores / engines
  threads), so a plan with two engines does not oversubscribe the CPU;
- engines start before the clock starts (warm), and every run uses the same concurrency.
Quality is scored per node on the run's own outputs with the eval scorers, and checked against
each node's floor: a plan that is faster but breaks a floor is reported as such.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from murakkab_lg.catalog.hardware import WATTS_SOURCE, describe_machine, watts_per_core
from murakkab_lg.demo import tasks
from murakkab_lg.demo.graph import ANNOTATIONS, WORKFLOW_NAME, build_graph
from murakkab_lg.integrations.chat import MurakkabChat
from murakkab_lg.integrations.langgraph.extract import workflow_from_graph
from murakkab_lg.policies.static import StaticPolicy
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import LlamaCppSettings, Plan

__all__ = ("DemoResult", "NodeResult", "RunResult", "Spread", "run_demo", "with_core_shares")


class NodeResult(BaseModel):
    name: str
    intent: str
    model: str
    engine: str
    # the engine settings this node ran with, recorded explicitly so `sim.validate` can simulate
    # exactly what ran (None: not a llama.cpp engine, or a JSON written before these fields)
    threads: int | None = None
    parallel: int | None = None
    quality: float
    min_quality: float | None
    quality_ok: bool
    p50_s: float
    calls: int
    tokens: int
    # tokens split as the engine reported them (usage); 0 in JSONs written before the split
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_j: float
    energy_label: str


class RunResult(BaseModel):
    policy: str
    wall_s: float
    energy_j: float
    energy_label: str
    tokens: int
    nodes: list[NodeResult]
    all_quality_ok: bool


class Spread(BaseModel):
    """Median and range of one figure over the repeated runs of a policy."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, xs: list[float]) -> Spread:
        return cls(median=statistics.median(xs), low=min(xs), high=max(xs))


class DemoResult(BaseModel):
    date: str
    machine: str
    items: int
    split: str
    concurrency: int
    cores: int
    pairs: int
    order: list[str]  # the policy of each run, in the order they ran
    watts_per_core: float
    watts_source: str
    profile_source: str
    static: RunResult  # the run with the median wall time, shown per node
    planned: RunResult
    static_runs: list[RunResult]
    planned_runs: list[RunResult]
    static_wall_s: Spread
    planned_wall_s: Spread
    static_energy_j: Spread
    planned_energy_j: Spread
    speedup: float  # median static wall / median planned wall
    energy_ratio: float  # median static energy / median planned energy
    pair_speedups: list[float]  # static wall / planned wall within each pair
    pair_energy_ratios: list[float]


def _scores(ticket: dict[str, Any], out: dict[str, Any]) -> dict[str, float]:
    extracted = out.get("extracted") or {}
    used_id = str(extracted.get("order_id") or "your order")
    used_action = tasks.first_action(out.get("action", "")) or "escalate"
    return {
        "sentiment": tasks.score_sentiment(out.get("sentiment", ""), ticket["sentiment"]),
        "extract": tasks.score_extract(extracted.get("raw", ""), ticket),
        "decide": tasks.score_decide(out.get("action", ""), ticket["action"]),
        "reply": tasks.score_reply(out.get("reply", ""), {"order_id": used_id, "action": used_action}),
    }


def run_plan(runtime: Runtime, plan: Plan, items: list[dict[str, Any]], concurrency: int) -> RunResult:
    runtime.apply(plan)  # starts the plan's engines before the clock starts
    graph = build_graph(MurakkabChat(runtime=runtime, workflow=plan.workflow))
    mark = runtime.telemetry.mark()
    t0 = time.perf_counter()
    outputs = graph.batch([{"ticket": t} for t in items], config={"max_concurrency": concurrency})
    wall = time.perf_counter() - t0
    records = runtime.telemetry.since(mark)
    scores = [_scores(t, o) for t, o in zip(items, outputs, strict=True)]
    nodes = []
    for name, intent in ANNOTATIONS.items():
        recs = [r for r in records if r.node == name]
        dep = plan.deployment_for(name)
        quality = statistics.fmean(s[name] for s in scores)
        floor = intent.min_quality
        nodes.append(NodeResult(
            name=name, intent=intent.intent, model=dep.model, engine=dep.engine.label(),
            threads=dep.engine.threads if isinstance(dep.engine, LlamaCppSettings) else None,
            parallel=dep.engine.parallel if isinstance(dep.engine, LlamaCppSettings) else None,
            quality=quality, min_quality=floor, quality_ok=floor is None or quality >= floor - 1e-9,
            p50_s=statistics.median(r.latency_s for r in recs) if recs else 0.0, calls=len(recs),
            tokens=sum(r.prompt_tokens + r.completion_tokens for r in recs),
            prompt_tokens=sum(r.prompt_tokens for r in recs), completion_tokens=sum(r.completion_tokens for r in recs),
            energy_j=sum(r.energy_j or 0.0 for r in recs), energy_label="estimated",
        ))
    return RunResult(policy=plan.policy, wall_s=wall, energy_j=sum(n.energy_j for n in nodes),
                     energy_label="estimated", tokens=sum(n.tokens for n in nodes), nodes=nodes,
                     all_quality_ok=all(n.quality_ok for n in nodes))


def with_core_shares(plan: Plan, cores: int) -> Plan:
    """The plan with each llama.cpp engine given an equal share of `cores` as its threads.

    Two engines that each take every core fight over them (llama.cpp's threads spin while they
    wait), which punishes whichever plan runs more engines; an equal split is the neutral choice.
    """
    engines = [d for d in plan.deployments if isinstance(d.engine, LlamaCppSettings)]
    if not engines:
        return plan
    share = max(1, cores // len(engines))
    deployments = tuple(
        d.model_copy(update={"engine": d.engine.model_copy(update={"threads": share})})
        if isinstance(d.engine, LlamaCppSettings) else d for d in plan.deployments)
    return plan.model_copy(update={"deployments": deployments})


def _median_run(runs: list[RunResult]) -> RunResult:
    ranked = sorted(runs, key=lambda r: r.wall_s)
    return ranked[(len(ranked) - 1) // 2]


def run_demo(runtime: Runtime, *, items: int | None = None, concurrency: int = 4, pairs: int = 3,
             cores: int | None = None) -> DemoResult:
    """Static (largest model everywhere) and the runtime's policy, `pairs` times in alternating
    order, on the first `items` held-out tickets; each run starts its engines with its core share."""
    held_out = tasks.tickets("heldout")
    chosen = held_out[:items] if items else held_out
    cores = cores or os.cpu_count() or 1
    workflow = workflow_from_graph(build_graph(MurakkabChat(runtime=runtime)), name=WORKFLOW_NAME)
    plans = {"static": runtime.plan(workflow, policy=StaticPolicy()), "planned": runtime.plan(workflow)}
    order = [name for i in range(pairs) for name in (("static", "planned") if i % 2 == 0 else ("planned", "static"))]
    runs: dict[str, list[RunResult]] = {"static": [], "planned": []}
    for name in order:
        runtime.close()  # each run starts exactly its own engines, with its share of the cores
        runs[name].append(run_plan(runtime, with_core_shares(plans[name], cores), chosen, concurrency))
    runtime.close()
    static, planned = runs["static"], runs["planned"]
    walls = {k: Spread.of([r.wall_s for r in v]) for k, v in runs.items()}
    energy = {k: Spread.of([r.energy_j for r in v]) for k, v in runs.items()}
    return DemoResult(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=describe_machine(), items=len(chosen),
        split="heldout", concurrency=concurrency, cores=cores, pairs=pairs, order=order,
        watts_per_core=watts_per_core(), watts_source=WATTS_SOURCE,
        profile_source=plans["planned"].profile_source, static=_median_run(static), planned=_median_run(planned),
        static_runs=static, planned_runs=planned, static_wall_s=walls["static"], planned_wall_s=walls["planned"],
        static_energy_j=energy["static"], planned_energy_j=energy["planned"],
        speedup=walls["static"].median / walls["planned"].median if walls["planned"].median else 0.0,
        energy_ratio=energy["static"].median / energy["planned"].median if energy["planned"].median else 0.0,
        pair_speedups=[s.wall_s / p.wall_s for s, p in zip(static, planned, strict=True) if p.wall_s],
        pair_energy_ratios=[s.energy_j / p.energy_j for s, p in zip(static, planned, strict=True) if p.energy_j],
    )
