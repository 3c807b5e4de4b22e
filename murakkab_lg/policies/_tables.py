"""Cost tables: every (node, deployment, operating level) option with its predicted figures.

Estimate, then solve, then report: the MILP, its diagnostics and its explanations all read the
same arrays, computed once with numpy. The figures are exactly those of `base.evaluate()` (same
formula, same operation order; a test pins the equality), but built per deployment over all nodes
at once, because a 500-node x 200-deployment problem would otherwise spend seconds creating
100,000 `Prediction` objects before the solver even starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from murakkab_lg.policies.base import Candidate
from murakkab_lg.spec import Workflow, WorkflowNode

__all__ = ("NodeRef", "Tables", "build_tables")


@dataclass(frozen=True)
class NodeRef:
    """A node of one of the workflows being planned together."""

    wf: int
    node: WorkflowNode


@dataclass
class Tables:
    """Dense figures: `lat[d][l]` is an array over global nodes for deployment d at level l."""

    refs: list[NodeRef]
    candidates: tuple[Candidate, ...]
    levels: list[tuple[float, ...]]  # operating concurrency levels per deployment
    lat: list[list[np.ndarray]]
    energy: list[list[np.ndarray]]
    cost: list[list[np.ndarray]]
    quality: np.ndarray  # [node, deployment]; nan where not measured
    width: np.ndarray  # fan-out per node
    feasible: list[list[np.ndarray]] = field(default_factory=list)  # per-node constraints hold

    @property
    def n_nodes(self) -> int:
        return len(self.refs)


def _node_arrays(refs: Sequence[NodeRef]) -> dict[str, np.ndarray]:
    it = [r.node.intent for r in refs]
    cons = [i.constraints for i in it]

    def arr(vals: Sequence[float | None], missing: float) -> np.ndarray:
        return np.array([missing if v is None else v for v in vals], dtype=float)

    return {
        "tin": arr([i.expected_input_tokens for i in it], 0.0),
        "tout": arr([i.expected_output_tokens for i in it], 0.0),
        "runs": arr([i.expected_calls * i.expected_iterations for i in it], 1.0),
        "width": arr([i.expected_fanout for i in it], 1.0),
        "min_q": arr([c.min_quality for c in cons], -np.inf),
        "slo": arr([c.latency_slo_s for c in cons], np.inf),
        "max_e": arr([c.max_energy_j for c in cons], np.inf),
        "max_c": arr([c.max_cost_usd for c in cons], np.inf),
    }


def build_tables(workflows: Sequence[Workflow], candidates: Sequence[Candidate], *, with_levels: bool) -> Tables:
    """Figures for every node of every workflow on every candidate.

    Without load (`with_levels=False`) each deployment has one level, concurrency 1 (fan-out
    still raises a node's own concurrency). With load, the levels are the concurrencies the
    deployment's profile was measured at; the MILP picks the one the load implies.
    """
    refs = [NodeRef(w, n) for w, wf in enumerate(workflows) for n in wf.nodes]
    a = _node_arrays(refs)
    tin, tout, runs, width = a["tin"], a["tout"], a["runs"], a["width"]
    quality = np.full((len(refs), len(candidates)), np.nan)
    intents = sorted({r.node.intent.intent for r in refs})
    intent_of = np.array([intents.index(r.node.intent.intent) for r in refs], dtype=int)
    levels, lat, energy, cost, feasible = [], [], [], [], []
    for d, cand in enumerate(candidates):
        prof = cand.profile
        scores = np.array([prof.quality[i].score if i in prof.quality else np.nan for i in intents])
        quality[:, d] = scores[intent_of] if len(refs) else quality[:, d]
        lv = tuple(float(p.concurrency) for p in prof.load) if with_levels else (1.0,)
        levels.append(lv)
        qd = quality[:, d]
        q_ok = np.where(np.isfinite(a["min_q"]), np.nan_to_num(qd, nan=-1.0) >= a["min_q"], True)
        cost_d = runs * width * (tin * prof.usd_per_input_token + tout * prof.usd_per_output_token)
        ld, ed, cd, fd = [], [], [], []
        for c in lv:
            kappa = np.maximum(c, width)
            pre, tpot, e_in, e_out = (np.empty(len(refs)) for _ in range(4))
            for k in np.unique(kappa):
                p = prof.at(float(k))
                m = kappa == k
                pre[m], tpot[m], e_in[m], e_out[m] = (  # prefill not published: decode only, as evaluate()
                    p.prefill_tok_s or np.inf, p.tpot_s, p.energy_per_input_token_j, p.energy_per_output_token_j)
            lat_l = runs * (tin / pre + tout * tpot)
            en_l = runs * width * (tin * e_in + tout * e_out)
            ld.append(lat_l)
            ed.append(en_l)
            cd.append(cost_d)
            fd.append(q_ok & (lat_l <= a["slo"]) & (en_l <= a["max_e"]) & (cost_d <= a["max_c"]))
        lat.append(ld)
        energy.append(ed)
        cost.append(cd)
        feasible.append(fd)
    return Tables(refs=refs, candidates=tuple(candidates), levels=levels, lat=lat, energy=energy, cost=cost,
                  quality=quality, width=width, feasible=feasible)
