"""`greedy`: per node, the deployment that meets its constraints at the lowest objective."""

from __future__ import annotations

from dataclasses import dataclass

from murakkab_lg.policies.base import PlanningProblem, check, evaluate, infeasible, objective_value
from murakkab_lg.spec import NodeChoice, Plan, Rejection

__all__ = ("GreedyPolicy",)


@dataclass(frozen=True)
class GreedyPolicy:
    """Node by node, cheapest feasible deployment; blind to shared capacity and the end-to-end SLO."""

    name: str = "greedy"

    def plan(self, problem: PlanningProblem) -> Plan:
        choices = []
        for node in problem.workflow.nodes:
            feasible, rejected = [], []
            for cand in problem.candidates:
                pred = evaluate(node, cand)
                why = check(node, cand.name, pred)
                (rejected if why else feasible).append(why or (cand, pred))
            if not feasible:
                raise infeasible(node, rejected)
            feasible.sort(key=lambda cp: (objective_value(cp[1], problem.objective), cp[0].name))
            (best, pred), *others = feasible
            rejected += [
                Rejection(deployment=c.name, reason="objective", prediction=p,
                          detail=f"feasible but worse on {problem.objective.value}")
                for c, p in others
            ]
            choices.append(NodeChoice(
                node=node.name, intent=node.intent.intent, deployment=best.name, prediction=pred,
                reason=f"lowest {problem.objective.value} among {len(feasible)} feasible",
                rejected=tuple(rejected),
            ))
        used = {c.deployment for c in choices}
        deployments = tuple(c.deployment for c in problem.candidates if c.name in used)
        return Plan(workflow=problem.workflow.name, policy=self.name, objective=problem.objective,
                    choices=tuple(choices), deployments=deployments, profile_source=problem.profile_source)
