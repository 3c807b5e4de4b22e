"""Seeded synthetic planning problems for the planner's tests and its scale benchmark.

Every profile made here says `synthetic` in its provenance source: these numbers are shaped like
real ones (bigger models: better quality, slower, more energy per token; batching: more
throughput, slower streams, less energy per token) but describe no real machine. Nothing in the
library plans with them unless a test or benchmark asks.
"""

from __future__ import annotations

import random

from murakkab_lg.policies.base import Candidate
from murakkab_lg.profile_spec import DeploymentProfile, LoadPoint, Provenance, QualityScore
from murakkab_lg.spec import (
    Deployment,
    Device,
    Intent,
    Inventory,
    LlamaCppSettings,
    Placement,
    VllmSettings,
    Workflow,
    WorkflowNode,
)

__all__ = ("calibrated_slo", "synthetic_candidates", "synthetic_inventory", "synthetic_workflow")

SYNTHETIC = Provenance(kind="synthetic", source="synthetic: murakkab_lg.policies._synthetic (not a measurement)",
                       date="2026-01-01", license="Apache-2.0")
INTENTS = ("classify", "extract", "summarize", "answer", "code")


def synthetic_candidates(n: int, seed: int, *, gpu: bool = False, levels: tuple[int, ...] = (1,),
                         priced: bool = False) -> list[Candidate]:
    """`n` deployments of random size; `levels` are the concurrencies each profile is 'measured' at."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = rng.uniform(0.1, 8.0)  # billions of parameters
        skill = min(0.99, 0.35 + 0.12 * size ** 0.5 + rng.uniform(-0.08, 0.08))
        tpot = 0.004 * size ** 0.8 * rng.uniform(0.7, 1.4)
        prefill = 4000.0 / size ** 0.7 * rng.uniform(0.7, 1.4)
        e_tok = 0.05 * size * rng.uniform(0.6, 1.5)
        boost = rng.uniform(0.5, 3.0)  # faster hardware / clocks: quicker, but more joules per token
        tpot, prefill, e_tok = tpot / boost, prefill * boost, e_tok * boost ** 1.5
        load = tuple(
            LoadPoint(concurrency=c, prefill_tok_s=prefill, tpot_s=tpot * (1 + 0.15 * (c - 1)),
                      throughput_tok_s=c / (tpot * (1 + 0.15 * (c - 1))),
                      energy_per_output_token_j=e_tok / c ** 0.5, energy_per_input_token_j=e_tok / 20)
            for c in levels
        )
        quality = {
            it: QualityScore(score=round(max(0.0, min(1.0, skill + rng.uniform(-0.05, 0.05))), 3),
                             metric="synthetic", n=100, ci_low=0.0, ci_high=1.0)
            for it in INTENTS if rng.random() < 0.9
        }
        name = f"syn-{i}"
        if gpu:
            engine = VllmSettings(tensor_parallel_size=1, gpu_memory_utilization=rng.choice((0.3, 0.45, 0.9)))
            placement = Placement(device="H100")
        else:
            engine = LlamaCppSettings(threads=rng.choice((1, 2)))
            placement = Placement(device="cpu")
        prof = DeploymentProfile(
            deployment=name, model=name, engine=engine.engine, hardware=placement.device, quality=quality,
            load=load, memory_gb=round(size * 2.1, 2), energy_label="estimated", provenance=SYNTHETIC,
            usd_per_input_token=(size * 2e-8 * rng.uniform(0.5, 2)) if priced else 0.0,
            usd_per_output_token=(size * 8e-8 * rng.uniform(0.5, 2)) if priced else 0.0,
        )
        dep = Deployment(name=name, model=name, engine=engine, placement=placement)
        out.append(Candidate(deployment=dep, profile=prof))
    return out


def synthetic_workflow(n: int, seed: int, *, name: str = "synthetic", edge_p: float = 0.3, floors: bool = True,
                       rate: float | None = None) -> Workflow:
    """A random DAG of `n` annotated nodes (edges only forward, so it is acyclic)."""
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        kw: dict = {"expected_input_tokens": rng.choice((50, 200, 800)),
                    "expected_output_tokens": rng.choice((8, 32, 128)),
                    "expected_calls": rng.choice((1.0, 1.0, 2.0))}
        if floors and rng.random() < 0.6:
            kw["min_quality"] = round(rng.uniform(0.3, 0.65), 2)
        if rng.random() < 0.15:
            kw["expected_fanout"] = float(rng.choice((2, 4)))
        nodes.append(WorkflowNode(name=f"n{i}", intent=Intent(rng.choice(INTENTS), **kw)))
    edges = []
    for j in range(1, n):
        preds = [i for i in range(max(0, j - 6), j) if rng.random() < edge_p] or [rng.randrange(j)]
        edges += [(f"n{i}", f"n{j}") for i in preds]
    return Workflow(name=name, nodes=tuple(nodes), edges=tuple(edges), arrival_rate_per_s=rate)


def calibrated_slo(wf: Workflow, candidates: list[Candidate], between: float) -> Workflow:
    """`wf` with an SLO that binds: `between` 0 is the fastest feasible critical path, 1 the one
    the least-energy choice per node gives (negative: below the fastest, so infeasible)."""
    import numpy as np

    from murakkab_lg.policies._graph import dag_of
    from murakkab_lg.policies._tables import build_tables

    t = build_tables([wf], candidates, with_levels=False)
    lat = np.stack([t.lat[d][0] for d in range(len(candidates))], axis=1)
    en = np.stack([t.energy[d][0] for d in range(len(candidates))], axis=1)
    ok = np.stack([t.feasible[d][0] for d in range(len(candidates))], axis=1)
    fastest = np.where(ok, lat, np.inf).min(axis=1)
    greedy = lat[np.arange(len(lat)), np.where(ok, en, np.inf).argmin(axis=1)]
    dag = dag_of(wf)
    lo, hi = dag.makespan(fastest.tolist()), dag.makespan(greedy.tolist())
    return wf.model_copy(update={"latency_slo_s": max(1e-6, lo + between * (hi - lo))})


def synthetic_inventory(gpus: int, memory_gb: float = 80.0, *, cpu_cores: int = 0) -> Inventory:
    devices = [Device(id=f"gpu{i}", kind="H100", memory_gb=memory_gb, gpu_index=i) for i in range(gpus)]
    if cpu_cores:
        devices.append(Device(id="cpu", kind="cpu", memory_gb=memory_gb, compute_units=float(cpu_cores)))
    return Inventory(devices=tuple(devices))
