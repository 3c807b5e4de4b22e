"""Validation against reality: predict a real `murakkab demo` run from the shipped CPU profile.

Input: the JSON `murakkab demo --json FILE` writes (a `DemoResult`: per run, wall time, and per
node the model, calls, median latency and estimated energy), the demo's workflow (its annotations
and edges; the caller passes them, the simulator does not import the demo app), the deployments
the demo ran (llama.cpp, with their threads and parallel slots) and their profiles.

The simulated run mirrors the real one: `concurrency` tickets in flight (LangGraph's batch with
max_concurrency is a closed loop), `items` tickets in all, each node on the model the real run
used, continuous batching up to the engine's parallel slots, and the llama.cpp engines sharing
the host's cores (two engines of 2 threads each on 2 cores run at half speed while both are
busy). Errors are relative: (simulated - measured) / measured, per node and in total.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from murakkab_lg.catalog.profiles import DeploymentProfile
from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.engine import rates_from_profile
from murakkab_lg.sim.fleet import max_seqs_of
from murakkab_lg.sim.simulator import SimDeployment, Simulation
from murakkab_lg.sim.workload import Arrivals, compile_workflow
from murakkab_lg.spec import Deployment, LlamaCppSettings, Workflow

__all__ = ("NodeCheck", "RunCheck", "validate_demo")

BOUND = 0.15  # the goal: every total within 15% of the measurement


class NodeCheck(BaseModel):
    node: str
    model: str
    calls: int
    measured_p50_s: float
    simulated_p50_s: float
    p50_error: float
    measured_energy_j: float  # estimated by the demo (CPU-seconds x W/core), not metered
    simulated_energy_j: float
    energy_error: float


class RunCheck(BaseModel):
    run: str  # "static" or "planned"
    items: int
    concurrency: int
    measured_wall_s: float
    simulated_wall_s: float
    wall_error: float
    measured_energy_j: float
    simulated_energy_j: float
    energy_error: float
    nodes: list[NodeCheck]
    within_bound: bool


def _err(sim: float, real: float) -> float:
    return (sim - real) / real if real else float("nan")


def validate_demo(demo: Mapping[str, Any], workflow: Workflow, deployments: list[Deployment],
                  profiles: Mapping[str, DeploymentProfile], *, host_cores: int, seed: int = 0) -> list[RunCheck]:
    """One RunCheck per run in the demo JSON (static, planned)."""
    by_model = {d.model: d for d in deployments}
    checks = []
    for run_name in ("static", "planned"):
        run = demo.get(run_name)
        if run is None:
            raise ConfigError(f"demo JSON has no {run_name!r} run. To fix: pass the file `murakkab demo --json` wrote.")
        assign, used = {}, {}
        for n in run["nodes"]:
            dep = by_model.get(n["model"])
            if dep is None:
                raise ConfigError(f"demo node {n['name']!r} ran {n['model']!r}, which no deployment given serves")
            if dep.name not in profiles:
                raise ConfigError(f"no profile for {dep.name!r}. To fix: pass the shipped CPU profile.")
            assign[n["name"]] = dep.name
            used[dep.name] = dep
        sims = [SimDeployment(name=d.name, rates=rates_from_profile(profiles[d.name], max_seqs_of(d)),
                              cpu_threads=d.engine.threads if isinstance(d.engine, LlamaCppSettings) else 0,
                              host=d.placement.host, label="simulated from the shipped CPU profile")
                for d in used.values()]
        sim = Simulation(compile_workflow(workflow), sims, assign, seed=seed,
                         host_cores={d.placement.host: host_cores for d in used.values()}, record_latencies=True)
        items, conc = int(demo["items"]), int(demo["concurrency"])
        out = sim.run(Arrivals(kind="closed", clients=conc, total=items))
        nodes = []
        for n in run["nodes"]:
            st = out.nodes[n["name"]]
            p50 = statistics.median(st.latencies_s) if st.latencies_s else 0.0
            nodes.append(NodeCheck(node=n["name"], model=n["model"], calls=st.calls, measured_p50_s=n["p50_s"],
                                   simulated_p50_s=p50, p50_error=_err(p50, n["p50_s"]),
                                   measured_energy_j=n["energy_j"], simulated_energy_j=st.energy_j,
                                   energy_error=_err(st.energy_j, n["energy_j"])))
        wall_err = _err(out.end_s, run["wall_s"])
        e_err = _err(out.energy_j, run["energy_j"])
        checks.append(RunCheck(run=run_name, items=items, concurrency=conc, measured_wall_s=run["wall_s"],
                               simulated_wall_s=out.end_s, wall_error=wall_err, measured_energy_j=run["energy_j"],
                               simulated_energy_j=out.energy_j, energy_error=e_err, nodes=nodes,
                               within_bound=abs(wall_err) <= BOUND and abs(e_err) <= BOUND))
    return checks
