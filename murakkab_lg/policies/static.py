"""`static`: one deployment for every node, the baseline users run today."""

from __future__ import annotations

from dataclasses import dataclass

from murakkab_lg.errors import ConfigError
from murakkab_lg.policies.base import Candidate, PlanningProblem, evaluate
from murakkab_lg.spec import NodeChoice, Plan

__all__ = ("StaticPolicy",)


@dataclass(frozen=True)
class StaticPolicy:
    """Serve every node with `deployment`, or by default the largest candidate model.

    Constraints are reported, not enforced: this is what a hard-coded graph does.
    """

    deployment: str | None = None
    name: str = "static"

    def _pick(self, problem: PlanningProblem) -> Candidate:
        if self.deployment is None:
            return max(problem.candidates, key=lambda c: (c.profile.memory_gb or 0.0, c.name))
        for c in problem.candidates:
            if c.name == self.deployment:
                return c
        names = ", ".join(c.name for c in problem.candidates)
        raise ConfigError(f"static policy: unknown deployment {self.deployment!r}; candidates: {names}")

    def plan(self, problem: PlanningProblem) -> Plan:
        chosen = self._pick(problem)
        choices = tuple(
            NodeChoice(node=n.name, intent=n.intent.intent, deployment=chosen.name,
                       prediction=evaluate(n, chosen), reason="static: one deployment for every node")
            for n in problem.workflow.nodes
        )
        return Plan(workflow=problem.workflow.name, policy=self.name, objective=problem.objective,
                    choices=choices, deployments=(chosen.deployment,),
                    profile_source=problem.profile_source)
