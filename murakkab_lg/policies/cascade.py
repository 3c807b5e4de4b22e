"""`cascade`: per node, a small model first, escalating to a larger one when the node's check fails.

A cascade pays for the small model on every call and for the large one only on the calls the
small one fails, so when the small model passes often, its expected cost is well below running
the large model alone, at the large model's quality.

Model (stated so the numbers can be checked): a stage's pass rate is its profile's quality for
the node's intent, measured with the same check the node uses to escalate. Stages are ordered by
rising pass rate and failures are *nested* (an item the larger model fails, every smaller model
fails too: the conservative assumption, since hard items are hard for all). Then stage i is
reached with probability ``1 - q[i-1]``, the cascade's quality is the last stage's ``q``, and

    E[energy] = sum_i P(reach i) * energy_i        (cost and latency alike)

Where the runtime has observed the node's escalation rate (re-planning sets
`Intent.escalation_rate` from live state), it replaces ``1 - q[0]``: the plan then predicts
energy, cost and latency at the rate the check actually escalates.

Latency is checked at the node's stated statistic: the p50 / p95 of the stop-stage distribution
(``P(stop at i) = P(reach i) - P(reach i+1)``), whose value at stage i is the sum of the latencies
of stages 1..i. The plan's prediction holds the expected values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.policies._diagnose import node_error
from murakkab_lg.policies._graph import dag_of
from murakkab_lg.policies.base import Candidate, PlanningProblem, evaluate, objective_value
from murakkab_lg.spec import NodeChoice, Plan, Prediction, Rejection, WorkflowNode

__all__ = ("CascadePolicy", "Chain", "chain_figures")


@dataclass(frozen=True)
class Chain:
    """One cascade for one node and its expected figures."""

    stages: tuple[Candidate, ...]
    expected: Prediction
    quantile_latency_s: float
    reach: tuple[float, ...]  # probability each stage is called

    @property
    def label(self) -> str:
        return " -> ".join(c.name for c in self.stages)


def chain_figures(node: WorkflowNode, stages: tuple[Candidate, ...]) -> Chain:
    preds = [evaluate(node, c) for c in stages]
    q = [p.quality or 0.0 for p in preds]
    reach = [1.0] + [1.0 - q[i - 1] for i in range(1, len(stages))]
    observed = node.intent.escalation_rate
    if observed is not None and len(stages) > 1:
        # Measured at run time: the first stage's escalation rate replaces 1 - q[0]; later stages
        # keep the nested model's conditional odds of being reached.
        base = reach[1]
        reach = [1.0, observed] + [observed * r / base if base > 0 else 0.0 for r in reach[2:]]
    reach = tuple(reach)
    exp = Prediction(
        quality=preds[-1].quality,
        latency_s=sum(r * p.latency_s for r, p in zip(reach, preds, strict=True)),
        energy_j=sum(r * p.energy_j for r, p in zip(reach, preds, strict=True)),
        cost_usd=sum(r * p.cost_usd for r, p in zip(reach, preds, strict=True)),
    )
    level = 0.95 if node.intent.constraints.latency_stat == "p95" else 0.5
    stop, cum = 0.0, 0.0
    quantile = 0.0
    for i, p in enumerate(preds):
        cum += p.latency_s
        stop += reach[i] - (reach[i + 1] if i + 1 < len(reach) else 0.0)
        quantile = cum
        if stop >= level - 1e-12:
            break
    return Chain(stages=stages, expected=exp, quantile_latency_s=quantile, reach=reach)


def _violation(node: WorkflowNode, ch: Chain) -> Rejection | None:
    c = node.intent.constraints
    pred = ch.expected
    if c.min_quality is not None and (pred.quality is None or pred.quality < c.min_quality):
        got = "not measured" if pred.quality is None else f"{pred.quality:.2f}"
        return Rejection(deployment=ch.label, reason="quality floor", prediction=pred,
                         detail=f"quality {got} < min_quality {c.min_quality:.2f}")
    if c.latency_slo_s is not None and ch.quantile_latency_s > c.latency_slo_s:
        return Rejection(deployment=ch.label, reason="latency SLO", prediction=pred,
                         detail=f"{c.latency_stat} latency {ch.quantile_latency_s:.2f} s > latency_slo_s "
                                f"{c.latency_slo_s:g}")
    if c.max_energy_j is not None and pred.energy_j > c.max_energy_j:
        return Rejection(deployment=ch.label, reason="energy budget", prediction=pred,
                         detail=f"expected energy {pred.energy_j:.1f} J > max_energy_j {c.max_energy_j:g}")
    if c.max_cost_usd is not None and pred.cost_usd > c.max_cost_usd:
        return Rejection(deployment=ch.label, reason="cost budget", prediction=pred,
                         detail=f"expected cost ${pred.cost_usd:.5f} > max_cost_usd {c.max_cost_usd:g}")
    return None


@dataclass(frozen=True)
class CascadePolicy:
    """Per node, the cheapest cascade (up to `max_stages` deployments) that meets its constraints.

    Every deployment may serve a node alone; only those with a measured pass rate for the node's
    intent are chained (an escalation needs a pass rate). With more than
    `exhaustive_up_to` of them, only those on the (objective, quality) Pareto front are chained.
    """

    max_stages: int = 3
    exhaustive_up_to: int = 12
    max_rejected: int = 5
    name: str = "cascade"

    def _pool(self, node: WorkflowNode, problem: PlanningProblem) -> list[Candidate]:
        measured = [c for c in problem.candidates if node.intent.intent in c.profile.quality]
        if len(measured) > self.exhaustive_up_to:
            key = {c.name: objective_value(evaluate(node, c), problem.objective)[0] for c in measured}
            measured = [c for c in measured if not any(
                key[o.name] <= key[c.name] and o.profile.quality[node.intent.intent].score
                >= c.profile.quality[node.intent.intent].score and o is not c for o in measured)]
        return sorted(measured, key=lambda c: (c.profile.quality[node.intent.intent].score, c.name))

    def _node(self, node: WorkflowNode, problem: PlanningProblem) -> NodeChoice:
        pool = self._pool(node, problem)
        ok: list[Chain] = []
        bad: list[Rejection] = []
        singles = [(c,) for c in problem.candidates]  # alone, even without a measured pass rate
        chains = (s for k in range(2, min(self.max_stages, len(pool)) + 1)
                  for s in itertools.combinations(pool, k))  # combinations keep the rising-quality order
        for stages in itertools.chain(singles, chains):
            ch = chain_figures(node, stages)
            why = _violation(node, ch)
            (bad.append(why) if why else ok.append(ch))
        if not ok:
            raise node_error(node, problem.candidates, None)  # no cascade helps if no stage fits alone
        ok.sort(key=lambda ch: (objective_value(ch.expected, problem.objective), len(ch.stages), ch.label))
        best, *others = ok
        alone = min((ch for ch in ok if len(ch.stages) == 1), key=lambda ch: objective_value(
            ch.expected, problem.objective), default=None)
        rejected = [Rejection(deployment=ch.label, reason="objective", prediction=ch.expected,
                              detail=f"feasible but expected {problem.objective.value} worse")
                    for ch in others[: self.max_rejected]]
        rejected += sorted(bad, key=lambda r: objective_value(r.prediction, problem.objective))[: self.max_rejected]
        unit = problem.objective.value
        if len(best.stages) > 1:
            esc = ", ".join(f"{c.name} on {r:.0%}" for c, r in zip(best.stages[1:], best.reach[1:], strict=True))
            vs = (f"; best single deployment {alone.label}: {objective_value(alone.expected, problem.objective)[0]:.3g}"
                  if alone else "")
            reason = (f"cascade {best.label}: escalates to {esc} of calls; expected {unit} "
                      f"{objective_value(best.expected, problem.objective)[0]:.3g}{vs}")
        else:
            reason = f"single deployment: no cascade beats it on expected {unit}"
        return NodeChoice(node=node.name, intent=node.intent.intent, deployment=best.stages[0].name,
                          prediction=best.expected, reason=reason, rejected=tuple(rejected),
                          escalation=tuple(c.name for c in best.stages[1:]))

    def plan(self, problem: PlanningProblem) -> Plan:
        wf = problem.workflow
        choices = tuple(self._node(n, problem) for n in wf.nodes)
        if wf.latency_slo_s is not None:
            dag = dag_of(wf)
            lat = [c.prediction.latency_s for c in choices]
            path, span = dag.critical_path(lat)
            if span > wf.latency_slo_s:
                raise PlanInfeasibleError(
                    f"workflow {wf.name!r}: latency_slo_s {wf.latency_slo_s:g} but the cascade plan's critical "
                    f"path {' -> '.join(path)} takes {span:.2f} s (expected). To fix: relax latency_slo_s, or "
                    "plan with policy 'milp', which trades node cost for the end-to-end SLO.",
                    node=path[-1], constraint="latency_slo_s", best=span,
                )
        used = {c.deployment for c in choices} | {e for c in choices for e in c.escalation}
        deployments = tuple(c.deployment for c in problem.candidates if c.name in used)
        return Plan(workflow=wf.name, policy=self.name, objective=problem.objective, choices=choices,
                    deployments=deployments, profile_source=problem.profile_source)
