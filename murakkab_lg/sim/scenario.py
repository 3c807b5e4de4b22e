"""One call from (workflow, policy, candidates, arrivals) to a simulated result.

The decisions are the product's own: `static`, `greedy`, `milp` and `cascade` plans come from
`policies.get_policy(name).plan(...)`, the router baseline from `sim.router`. The plan's engine
settings are honoured (max_num_seqs / parallel slots bound batching, tensor-parallel degree sets
GPUs per replica, llama.cpp threads share the host's cores). The fleet is then sized for the load
by one rule for every policy (`sim.fleet`).

Adaptive runtime seam: `controller` is called every `control_interval_s` of simulated time with a
`ControlState` (replicas, running and queued sequences per deployment, recent completion times)
and returns the replicas it wants per deployment; scale-out pays the cold start. The runtime's
own control functions (runtime/control.py) plug in here once they exist; until then no
"adaptive" row is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from murakkab_lg.errors import ConfigError
from murakkab_lg.policies.base import Candidate
from murakkab_lg.sim.fleet import build_fleet
from murakkab_lg.sim.metrics import USD_PER_GPU_HOUR, PolicyResult, summarize
from murakkab_lg.sim.router import PerRequestRouter
from murakkab_lg.sim.simulator import ControlState, SimOutcome, Simulation
from murakkab_lg.sim.workload import Arrivals, SimSpec, compile_workflow
from murakkab_lg.spec import Deployment, Inventory, Objective, Workflow

__all__ = ("POLICIES", "assignment_for", "load_sim_spec", "simulate")

POLICIES = ("static", "router", "greedy", "milp")


def load_sim_spec(path: str | Path) -> SimSpec:
    """The `sim:` section of a workflow file (fixed stages and stated assumptions); empty if absent."""
    import yaml

    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text()) if path.suffix.lower() in (".yaml", ".yml") else None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if path.suffix.lower() == ".json":
        import json

        data = json.loads(path.read_text())
    raw = (data or {}).get("sim") if isinstance(data, dict) else None
    try:
        return SimSpec.model_validate(raw or {})
    except ValueError as e:
        raise ConfigError(f"{path}: `sim:` section: {e}") from None


def assignment_for(policy: str, workflow: Workflow, candidates: tuple[Candidate, ...], objective: Objective,
                   usd_per_gpu_hour: float = USD_PER_GPU_HOUR) -> tuple[dict[str, str], list[Deployment]]:
    """Node -> deployment under `policy`, and the deployments it runs."""
    if policy == "router":
        router = PerRequestRouter(candidates, PerRequestRouter.bars_for(workflow), usd_per_gpu_hour)
        assign = router.assignment(workflow)
        return assign, [c.deployment for c in candidates if c.name in set(assign.values())]
    from murakkab_lg.policies import PlanningProblem, get_policy

    # The fleet is sized for the load afterwards, the same way for every policy, so the plan is made
    # for one run at a time (a plan at the arrival rate would need replicas the candidates lack).
    wf = workflow.model_copy(update={"arrival_rate_per_s": None})
    plan = get_policy(policy).plan(PlanningProblem(workflow=wf, candidates=candidates, objective=objective))
    return {c.node: c.deployment for c in plan.choices}, list(plan.deployments)


def simulate(policy: str, workflow: Workflow, candidates: tuple[Candidate, ...], arrivals: Arrivals, *,
             sim: SimSpec | None = None, objective: Objective | None = None, seed: int = 0,
             target_concurrency: float = 64.0, cold_start_s: float = 0.0,
             usd_per_gpu_hour: float = USD_PER_GPU_HOUR, host_cores: dict[str, int] | None = None,
             controller: Callable[[ControlState], dict[str, int]] | None = None, control_interval_s: float = 10.0,
             record_latencies: bool = False, progress: Callable[[float], None] | None = None,
             inventory: Inventory | None = None) -> tuple[PolicyResult, SimOutcome]:
    objective = objective or workflow.objective or Objective.ENERGY
    assign, deps = assignment_for(policy, workflow, candidates, objective, usd_per_gpu_hour)
    template = compile_workflow(workflow, sim)
    profiles = {c.name: c.profile for c in candidates}
    rate = arrivals.rate_per_s if arrivals.kind != "closed" else 0.0
    fleet = build_fleet(template, assign, deps, profiles, rate, target_concurrency=target_concurrency,
                        cold_start_s=cold_start_s, inventory=inventory)
    if host_cores is None:  # CPU replicas share this machine's cores unless told otherwise
        host_cores = {d.host: os.cpu_count() or 1 for d in fleet.deployments if d.cpu_threads}
    simulation = Simulation(template, fleet.deployments, assign, seed=seed, host_cores=host_cores,
                            controller=controller, control_interval_s=control_interval_s,
                            record_latencies=record_latencies)
    out = simulation.run(arrivals, progress=progress)
    labels = {d.name: d.label for d in fleet.deployments}
    return summarize(policy, out, rate_per_s=rate, assignment=assign, gpus=fleet.gpus, labels=labels,
                     usd_per_gpu_hour=usd_per_gpu_hour), out
