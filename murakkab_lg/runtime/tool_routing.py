"""Where a call that carries tools may go: only to deployments good enough at `tool-use`.

A node is planned for its intent (`answer`, `plan`, ...), but an agent's model node also calls
tools, and a model that answers well may still call tools badly. The rule, applied per call:

- A call *carries tools* when its body has `tools` and `tool_choice` is not `none`.
- Its floor is the node's `min_quality`, read as a floor on `tool-use` quality too. A node
  without `min_quality` states no floor, so its calls stay where the plan put them.
- The planned deployment keeps the call if its measured `tool-use` quality meets the floor, or
  if it has no `tool-use` measurement: the rule acts on evidence, and a fleet profiled before
  this intent existed (or a hosted model nobody measured) must not be moved onto a small local
  model that happens to be measured. `murakkab profile --intents tool-use` brings it under the rule.
- Measured below the floor: the call goes to the measured deployment that meets it and is best
  on the runtime's objective (energy, latency or cost per output token from its profile); where
  none does, `PlanInfeasibleError` names the best `tool-use` quality available and where.

Calls that name their deployment are the caller's choice and never move. Pure: profiles in, a
deployment name out; the runtime applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.profile_spec import DeploymentProfile
from murakkab_lg.spec import Intent, Objective

__all__ = ("TOOL_USE", "carries_tools", "route_tool_call")

TOOL_USE = "tool-use"


def carries_tools(body: Mapping[str, Any]) -> bool:
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def _cost(p: DeploymentProfile, objective: Objective) -> float:
    """Per output token on `objective` at the lowest measured concurrency (lower is better)."""
    lp = min(p.load, key=lambda x: x.concurrency) if p.load else None
    if objective is Objective.LATENCY:
        return lp.tpot_s if lp else float("inf")
    if objective is Objective.COST:
        return p.usd_per_output_token or 0.0
    return lp.energy_per_output_token_j if lp else float("inf")


def route_tool_call(planned: str, intent: Intent | None, profiles: Iterable[DeploymentProfile], *,
                    objective: Objective = Objective.ENERGY, node: str | None = None) -> str:
    """The deployment for a tool-bearing call that the plan sent to `planned` (see the module doc)."""
    floor = intent.constraints.min_quality if intent is not None else None
    if floor is None:
        return planned
    rows = {p.deployment: p for p in profiles}
    score = {name: q.score for name, p in rows.items() if (q := p.quality.get(TOOL_USE)) is not None}
    if score.get(planned, floor) >= floor:
        return planned
    good = [name for name, s in score.items() if s >= floor]
    if good:
        return min(good, key=lambda n: (_cost(rows[n], objective), n))
    where = f"node {node!r}" if node else f"intent {intent.intent!r}" if intent else "the call"
    best = max(score, key=lambda n: (score[n], n))
    raise PlanInfeasibleError(
        f"{where}: the call carries tools and min_quality {floor:g} applies to tool-use, but the best available "
        f"is {score[best]:.2f} ({best}). To fix: lower min_quality to {score[best]:.2f}, or add a deployment "
        "that calls tools better (measure it with `murakkab profile --intents tool-use`).",
        node=node, constraint="min_quality", best=score[best])
