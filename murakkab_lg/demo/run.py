"""Run the triage demo: the same graph over the same tickets, static-largest vs planned.

Both runs use warm engines and the same concurrency, so the comparison is plan against plan.
Quality is scored per node on the run's own outputs with the eval scorers, and checked
against each node's floor: a plan that is faster but breaks a floor is reported as such.
"""

from __future__ import annotations

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
from murakkab_lg.spec import Plan

__all__ = ("DemoResult", "NodeResult", "RunResult", "run_demo")


class NodeResult(BaseModel):
    name: str
    intent: str
    model: str
    engine: str
    quality: float
    min_quality: float | None
    quality_ok: bool
    p50_s: float
    calls: int
    tokens: int
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


class DemoResult(BaseModel):
    date: str
    machine: str
    items: int
    concurrency: int
    watts_per_core: float
    watts_source: str
    profile_source: str
    static: RunResult
    planned: RunResult
    speedup: float
    energy_ratio: float


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
            quality=quality, min_quality=floor, quality_ok=floor is None or quality >= floor - 1e-9,
            p50_s=statistics.median(r.latency_s for r in recs) if recs else 0.0, calls=len(recs),
            tokens=sum(r.prompt_tokens + r.completion_tokens for r in recs),
            energy_j=sum(r.energy_j or 0.0 for r in recs), energy_label="estimated",
        ))
    return RunResult(policy=plan.policy, wall_s=wall, energy_j=sum(n.energy_j for n in nodes),
                     energy_label="estimated", tokens=sum(n.tokens for n in nodes), nodes=nodes,
                     all_quality_ok=all(n.quality_ok for n in nodes))


def run_demo(runtime: Runtime, *, items: int | None = None, concurrency: int = 4) -> DemoResult:
    """Static (largest model everywhere) then the runtime's policy, on the first `items` tickets."""
    chosen = tasks.tickets()[:items] if items else tasks.tickets()
    workflow = workflow_from_graph(build_graph(MurakkabChat(runtime=runtime)), name=WORKFLOW_NAME)
    static_plan = runtime.plan(workflow, policy=StaticPolicy())
    planned_plan = runtime.plan(workflow)
    static = run_plan(runtime, static_plan, chosen, concurrency)
    planned = run_plan(runtime, planned_plan, chosen, concurrency)
    return DemoResult(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=describe_machine(), items=len(chosen),
        concurrency=concurrency, watts_per_core=watts_per_core(), watts_source=WATTS_SOURCE,
        profile_source=planned_plan.profile_source, static=static, planned=planned,
        speedup=static.wall_s / planned.wall_s if planned.wall_s else 0.0,
        energy_ratio=static.energy_j / planned.energy_j if planned.energy_j else 0.0,
    )
