"""What the simulator runs: workflow DAGs compiled from the `Workflow` spec, and arrival processes.

A node of the spec becomes an LLM stage: per workflow run it makes `expected_calls x
expected_iterations` rounds one after another (a loop's body; the extractor already gave every
node of a loop the loop's iteration count), and each round sends `expected_fanout` identical calls
at once (a `Send` fan-out). Non-integer expectations are drawn per run as the integer part plus one
more with probability equal to the fraction, so the mean is the spec's value. Running a loop node's
iterations back to back before its successors gives the same time as interleaving the loop body,
because the body is a chain.

Non-LLM stages (frame extraction, speech-to-text, unit tests) are fixed service times declared in
the workflow file's `sim:` section; they delay their run, take no deployment and are counted in
completion time only (their energy is the same under every policy and is not modelled).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from murakkab_lg.errors import ConfigError
from murakkab_lg.policies._graph import Dag
from murakkab_lg.spec import Workflow

__all__ = (
    "Arrivals",
    "FixedStage",
    "SimNode",
    "SimSpec",
    "Template",
    "arrival_times",
    "compile_workflow",
    "draw_count",
)


class FixedStage(BaseModel):
    """A non-LLM stage: a fixed service time, placed in the DAG by its neighbours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_time_s: Annotated[float, Field(ge=0.0)]
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    expected_iterations: Annotated[float, Field(ge=1.0)] = 1.0
    note: str = ""  # where the figure comes from (an assumption unless it cites a source)


class SimSpec(BaseModel):
    """The workflow file's optional `sim:` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fixed_stages: dict[str, FixedStage] = {}
    assumptions: tuple[str, ...] = ()


class Arrivals(BaseModel):
    """How workflow runs arrive: Poisson, Poisson with bursts, a trace, or closed-loop clients."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["poisson", "bursts", "trace", "closed"] = "poisson"
    rate_per_s: Annotated[float, Field(gt=0.0)] = 1.0
    duration_s: Annotated[float, Field(gt=0.0)] = 60.0
    # bursts: every `burst_every_s`, `burst_len_s` at `burst_factor` x the rate (the mean stays `rate_per_s`)
    burst_factor: Annotated[float, Field(ge=1.0)] = 4.0
    burst_every_s: Annotated[float, Field(gt=0.0)] = 60.0
    burst_len_s: Annotated[float, Field(gt=0.0)] = 10.0
    trace_csv: str | None = None  # a CSV with a `time_s` column (seconds from the start)
    clients: Annotated[int, Field(ge=1)] = 1  # closed: runs in flight at once
    total: Annotated[int, Field(ge=1)] | None = None  # closed: runs in all


def arrival_times(a: Arrivals, rng: np.random.Generator) -> np.ndarray:
    """Open-loop arrival times in [0, duration_s), sorted. (Closed-loop runs are started by the simulator.)"""
    if a.kind == "poisson":
        n = rng.poisson(a.rate_per_s * a.duration_s)
        return np.sort(rng.uniform(0.0, a.duration_s, n))
    if a.kind == "bursts":
        if a.burst_len_s >= a.burst_every_s:
            raise ConfigError("bursts: burst_len_s must be shorter than burst_every_s")
        frac = a.burst_len_s / a.burst_every_s
        # base rate so that the mean over a period is rate_per_s: base*(1-frac) + base*factor*frac = rate
        base = a.rate_per_s / (1.0 - frac + a.burst_factor * frac)
        peak = base * a.burst_factor
        n = rng.poisson(peak * a.duration_s)
        t = rng.uniform(0.0, a.duration_s, n)
        in_burst = (t % a.burst_every_s) < a.burst_len_s
        keep = in_burst | (rng.uniform(size=n) < base / peak)  # thinning outside bursts
        return np.sort(t[keep])
    if a.kind == "trace":
        if not a.trace_csv:
            raise ConfigError("arrivals: kind 'trace' needs trace_csv (a CSV with a `time_s` column)")
        return _read_trace(Path(a.trace_csv))
    raise ConfigError("closed-loop arrivals have no precomputed times")


def _read_trace(path: Path) -> np.ndarray:
    try:
        with path.open() as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"cannot read trace {path}: {e}") from None
    if not rows or "time_s" not in rows[0]:
        raise ConfigError(f"trace {path} needs a header with a `time_s` column (seconds from the start)")
    try:
        return np.sort(np.array([float(r["time_s"]) for r in rows]))
    except ValueError as e:
        raise ConfigError(f"trace {path}: {e}") from None


def draw_count(mean: float, u: float) -> int:
    """An integer with the given mean: floor(mean), plus one with probability frac(mean)."""
    base = math.floor(mean)
    return base + (1 if u < mean - base else 0)


@dataclass(frozen=True)
class SimNode:
    index: int
    name: str
    intent: str  # "" for a fixed stage
    input_tokens: int
    output_tokens: int
    rounds: float  # expected rounds per run (calls x iterations)
    fanout: float  # expected parallel copies per round
    service_time_s: float  # fixed stages only
    min_quality: float | None
    successors: tuple[int, ...]
    n_preds: int

    @property
    def is_llm(self) -> bool:
        return bool(self.intent)


@dataclass(frozen=True)
class Template:
    """A compiled workflow: nodes in index order, sources, and the end-to-end SLO."""

    name: str
    nodes: tuple[SimNode, ...]
    sources: tuple[int, ...]
    latency_slo_s: float | None

    def llm_nodes(self) -> Iterator[SimNode]:
        return (n for n in self.nodes if n.is_llm)


def compile_workflow(wf: Workflow, sim: SimSpec | None = None) -> Template:
    """The workflow plus its fixed stages as one DAG the simulator walks."""
    sim = sim or SimSpec()
    names = [n.name for n in wf.nodes] + list(sim.fixed_stages)
    if len(set(names)) != len(names):
        raise ConfigError(f"workflow {wf.name!r}: a fixed stage has the name of a node; names must be unique")
    index = {n: i for i, n in enumerate(names)}
    edges = set(wf.edges)
    for stage, fs in sim.fixed_stages.items():
        for other in (*fs.after, *fs.before):
            if other not in index:
                raise ConfigError(f"fixed stage {stage!r} names unknown node {other!r}; known: {', '.join(names)}")
        edges |= {(a, stage) for a in fs.after} | {(stage, b) for b in fs.before}
    succ: dict[int, list[int]] = {i: [] for i in range(len(names))}
    preds = [0] * len(names)
    for a, b in sorted(edges):
        succ[index[a]].append(index[b])
        preds[index[b]] += 1
    Dag(names, sorted(edges), wf.name)  # the planner's DAG check: a cycle is an error naming the fix
    nodes = []
    for n in wf.nodes:
        i, it = index[n.name], n.intent
        nodes.append(SimNode(
            index=i, name=n.name, intent=it.intent, input_tokens=it.expected_input_tokens,
            output_tokens=it.expected_output_tokens, rounds=it.expected_calls * it.expected_iterations,
            fanout=it.expected_fanout, service_time_s=0.0, min_quality=it.constraints.min_quality,
            successors=tuple(succ[i]), n_preds=preds[i]))
    for stage, fs in sim.fixed_stages.items():
        i = index[stage]
        nodes.append(SimNode(index=i, name=stage, intent="", input_tokens=0, output_tokens=0,
                             rounds=fs.expected_iterations, fanout=1.0, service_time_s=fs.service_time_s,
                             min_quality=None, successors=tuple(succ[i]), n_preds=preds[i]))
    nodes.sort(key=lambda n: n.index)
    return Template(name=wf.name, nodes=tuple(nodes), sources=tuple(i for i in range(len(names)) if preds[i] == 0),
                    latency_slo_s=wf.latency_slo_s)
