"""The Policy protocol and the pure cost evaluation every policy shares.

A policy is a pure function of its inputs: (workflow, candidate deployments with their profiles,
objective) -> Plan. It imports spec (with `profile_spec`), errors and its solver only, never an engine, a server or
LangGraph, so it can be tested against brute force and benchmarked alone.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.profile_spec import DeploymentProfile
from murakkab_lg.spec import (
    Deployment,
    Inventory,
    Objective,
    Plan,
    Prediction,
    Rejection,
    Workflow,
    WorkflowNode,
)

__all__ = (
    "Candidate",
    "PlanningProblem",
    "Policy",
    "check",
    "evaluate",
    "objective_value",
)


class Candidate(BaseModel):
    """A deployment the planner may choose, with the profile that predicts its behaviour."""

    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    profile: DeploymentProfile

    @property
    def name(self) -> str:
        return self.deployment.name


class PlanningProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow: Workflow
    candidates: tuple[Candidate, ...]
    objective: Objective = Objective.ENERGY
    profile_source: str = ""
    inventory: Inventory | None = None  # None: capacity is not constrained

    def model_post_init(self, _ctx: object) -> None:
        if not self.candidates:
            raise ConfigError("no candidate deployments to plan with. To fix: add models to the catalog.")


class Policy(Protocol):
    name: str

    def plan(self, problem: PlanningProblem) -> Plan: ...


def evaluate(node: WorkflowNode, candidate: Candidate, concurrency: float = 1.0) -> Prediction:
    """Predicted quality, latency, energy and cost of running `node` on `candidate`.

    Latency and energy scale with the node's expected calls and loop iterations (they run one
    after another); a fan-out of width w runs w copies at once, so each call is predicted at
    concurrency max(concurrency, w) and energy and cost count all w copies. `concurrency` is the
    deployment's operating concurrency. Quality is the profile's score for the node's intent, None
    where it was never measured.
    """
    intent = node.intent
    prof = candidate.profile
    q = prof.quality.get(intent.intent)
    runs = intent.expected_calls * intent.expected_iterations
    width = intent.expected_fanout
    conc = max(concurrency, width)
    tin, tout = intent.expected_input_tokens, intent.expected_output_tokens
    latency = runs * prof.latency_s(tin, tout, conc)
    energy = runs * width * prof.energy_j(tin, tout, conc)
    cost = runs * width * prof.cost_usd(tin, tout)
    return Prediction(quality=q.score if q else None, latency_s=latency, energy_j=energy, cost_usd=cost)


def check(node: WorkflowNode, name: str, pred: Prediction) -> Rejection | None:
    """The first constraint of `node` that `pred` violates, as a Rejection; None if feasible."""
    c = node.intent.constraints
    if c.min_quality is not None and (pred.quality is None or pred.quality < c.min_quality):
        got = "not measured" if pred.quality is None else f"{pred.quality:.2f}"
        return Rejection(deployment=name, reason="quality floor", prediction=pred,
                         detail=f"quality {got} < min_quality {c.min_quality:.2f}")
    if c.latency_slo_s is not None and pred.latency_s > c.latency_slo_s:
        return Rejection(deployment=name, reason="latency SLO", prediction=pred,
                         detail=f"latency {pred.latency_s:.2f} s > latency_slo_s {c.latency_slo_s:.2f}")
    if c.max_energy_j is not None and pred.energy_j > c.max_energy_j:
        return Rejection(deployment=name, reason="energy budget", prediction=pred,
                         detail=f"energy {pred.energy_j:.1f} J > max_energy_j {c.max_energy_j:.1f}")
    if c.max_cost_usd is not None and pred.cost_usd > c.max_cost_usd:
        return Rejection(deployment=name, reason="cost budget", prediction=pred,
                         detail=f"cost ${pred.cost_usd:.5f} > max_cost_usd {c.max_cost_usd:.5f}")
    return None


def objective_value(pred: Prediction, objective: Objective) -> tuple[float, float]:
    """Sort key: the objective first, then latency (or energy) to break ties deterministically."""
    if objective is Objective.ENERGY:
        return (pred.energy_j, pred.latency_s)
    if objective is Objective.LATENCY:
        return (pred.latency_s, pred.energy_j)
    return (pred.cost_usd, pred.energy_j)


def infeasible(node: WorkflowNode, rejections: list[Rejection]) -> PlanInfeasibleError:
    """The clearest error for a node no candidate can serve: the binding constraint and the best value."""
    c = node.intent.constraints
    # The binding constraint is the quality floor only if no candidate meets it; otherwise it is
    # whatever stopped the candidates that did meet it.
    past_floor = [r for r in rejections if r.reason != "quality floor"]
    first = past_floor[0].reason if past_floor else "quality floor"
    if first == "quality floor" and c.min_quality is not None:
        measured = [r for r in rejections if r.prediction.quality is not None]
        if not measured:
            return PlanInfeasibleError(
                f"node {node.name!r}: min_quality {c.min_quality:.2f} but no candidate has a quality "
                f"measurement for intent {node.intent.intent!r}. To fix: run `murakkab profile "
                f"--intents {node.intent.intent}` or drop min_quality.",
                node=node.name, constraint="min_quality", best=None,
            )
        best = max(measured, key=lambda r: r.prediction.quality or 0.0)
        return PlanInfeasibleError(
            f"node {node.name!r}: min_quality {c.min_quality:.2f}, best available "
            f"{best.prediction.quality:.2f} ({best.deployment}). To fix: relax min_quality or add a "
            "stronger model.",
            node=node.name, constraint="min_quality", best=best.prediction.quality,
        )
    key = {"latency SLO": ("latency_slo_s", lambda r: r.prediction.latency_s),
           "energy budget": ("max_energy_j", lambda r: r.prediction.energy_j),
           "cost budget": ("max_cost_usd", lambda r: r.prediction.cost_usd)}.get(first)
    if key is None:
        return PlanInfeasibleError(f"node {node.name!r}: no candidate deployment fits", node=node.name)
    field, get = key
    same = [r for r in rejections if r.reason == first]
    best = min(same, key=get)
    limit = getattr(c, field)
    return PlanInfeasibleError(
        f"node {node.name!r}: {field} {limit:g} but the best candidate that meets the quality floor "
        f"needs {get(best):.3g} ({best.deployment}). To fix: relax {field} or add faster hardware.",
        node=node.name, constraint=field, best=get(best),
    )
