"""The per-request router baseline: a model per request from intent-level quality and price.

This is what RouteLLM- or LiteLLM-style routers do: each request is routed on its own, from what
the request says (its intent) and a quality bar, to the cheapest model in the pool that clears the
bar. The router has no view of the workflow: it does not know which node a request comes from, so
one intent gets one quality bar (the operator must set it to the strictest floor among the nodes
that send that intent, or some node would get a model below its floor), it does not see fan-out,
loop iterations or the end-to-end SLO, and it does not co-plan engine settings. It is written
as a pure function with the same shape as a policy (candidates in, node -> deployment out), so the
simulator and the results page compare it with the planner on the same profiles.

Price per output token, for self-hosted deployments: GPU-hour price x GPUs / (3600 x the profile's
throughput at the engine's max_num_seqs), the cost a LiteLLM cost router would be configured with;
hosted deployments use the profile's price per token.
"""

from __future__ import annotations

from dataclasses import dataclass

from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.policies.base import Candidate
from murakkab_lg.spec import VllmSettings, Workflow

__all__ = ("PerRequestRouter", "price_per_output_token")


def price_per_output_token(c: Candidate, usd_per_gpu_hour: float) -> float:
    p = c.profile
    if p.usd_per_output_token:
        return p.usd_per_output_token
    eng = c.deployment.engine
    gpus = eng.tensor_parallel_size if isinstance(eng, VllmSettings) else 1
    seqs = eng.max_num_seqs if isinstance(eng, VllmSettings) else getattr(eng, "parallel", 1)
    return usd_per_gpu_hour * gpus / (3600.0 * p.at(seqs).throughput_tok_s)


@dataclass(frozen=True)
class PerRequestRouter:
    """Route each request to the cheapest candidate whose quality for its intent clears the bar.

    `bars` maps intent -> quality bar; `bars_for(workflow)` derives the bars an operator must set
    so every node's floor holds (the strictest floor per intent), which is the best a router that
    cannot tell nodes apart can do.
    """

    candidates: tuple[Candidate, ...]
    bars: dict[str, float]
    usd_per_gpu_hour: float
    name: str = "router"

    @staticmethod
    def bars_for(workflow: Workflow) -> dict[str, float]:
        bars: dict[str, float] = {}
        for n in workflow.nodes:
            q = n.intent.constraints.min_quality
            if q is not None:
                bars[n.intent.intent] = max(q, bars.get(n.intent.intent, 0.0))
        return bars

    def route(self, intent: str) -> str:
        """The deployment a request with `intent` goes to."""
        bar = self.bars.get(intent)
        ok = []
        for c in self.candidates:
            q = c.profile.quality.get(intent)
            if bar is None or (q is not None and q.score >= bar):
                ok.append((price_per_output_token(c, self.usd_per_gpu_hour), c.name))
        if not ok:
            raise PlanInfeasibleError(
                f"router: no candidate reaches quality {bar:.2f} for intent {intent!r}. To fix: lower the bar "
                "or add a stronger model to the pool.")
        return min(ok)[1]

    def assignment(self, workflow: Workflow) -> dict[str, str]:
        """Node -> deployment as the router would send each node's requests (same for every request)."""
        return {n.name: self.route(n.intent.intent) for n in workflow.nodes}
