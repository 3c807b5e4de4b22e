"""One call from (workflow, policy, candidates, arrivals) to a simulated result.

The decisions are the product's own: `static`, `greedy`, `milp` and `cascade` plans come from
`policies.get_policy(name).plan(...)`, the router baseline from `sim.router`. The plan's engine
settings are honoured (max_num_seqs / parallel slots bound batching, tensor-parallel degree sets
GPUs per replica, llama.cpp threads share the host's cores). The fleet is then sized for the load
by one rule for every policy (`sim.fleet`).

Plans are made at the simulated arrival rate (see `plan_for`), so the planner's load model
shapes them. `adaptive` is the MILP plan run the way the adaptive runtime runs it: every call is routed by
`runtime.control.choose` (spill to the plan's alternatives when the planned deployment would
break the node's latency budget) over simulated telemetry, with each node's first alternative
kept warm (sim/adaptive.py). A second seam, `controller`, is called every `control_interval_s`
with a `ControlState` (replicas, running and queued sequences per deployment, recent completion
times) and returns the replicas it wants per deployment; scale-out pays the cold start.
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
from murakkab_lg.spec import Deployment, Inventory, Objective, Plan, Workflow

__all__ = ("POLICIES", "assignment_for", "load_sim_spec", "simulate")

POLICIES = ("static", "router", "greedy", "milp", "adaptive")


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


def plan_for(policy: str, workflow: Workflow, candidates: tuple[Candidate, ...], objective: Objective,
             rate_per_s: float | None = None) -> Plan:
    """The planner's plan under `policy` (`adaptive` starts from the MILP plan), made for the load.

    The planner is told the arrival rate (its load model then predicts each deployment at the
    concurrency the load implies, which is how it sees that consolidating nodes on one deployment
    batches better). Its candidates have one replica each, so past what one replica of each
    carries the plan is infeasible; then it is made for the largest rate r / 2^k that is feasible,
    and the fleet sizing afterwards (the same for every policy) scales it out to the full load.
    """
    from murakkab_lg.errors import PlanInfeasibleError
    from murakkab_lg.policies import PlanningProblem, get_policy

    name = "milp" if policy == "adaptive" else policy
    rate = rate_per_s
    while True:
        wf = workflow.model_copy(update={"arrival_rate_per_s": rate})
        try:
            return get_policy(name).plan(PlanningProblem(workflow=wf, candidates=candidates, objective=objective))
        except PlanInfeasibleError:
            if rate is None:
                raise
            rate = rate / 2 if rate > 0.05 else None  # down to one run at a time


def assignment_for(policy: str, workflow: Workflow, candidates: tuple[Candidate, ...], objective: Objective,
                   usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
                   rate_per_s: float | None = None) -> tuple[dict[str, str], list[Deployment]]:
    """Node -> deployment under `policy` (for `adaptive`, its planned primaries), and the deployments it runs."""
    if policy == "router":
        router = PerRequestRouter(candidates, PerRequestRouter.bars_for(workflow), usd_per_gpu_hour)
        assign = router.assignment(workflow)
        return assign, [c.deployment for c in candidates if c.name in set(assign.values())]
    plan = plan_for(policy, workflow, candidates, objective, rate_per_s)
    return {c.node: c.deployment for c in plan.choices}, list(plan.deployments)


def simulate(policy: str, workflow: Workflow, candidates: tuple[Candidate, ...], arrivals: Arrivals, *,
             sim: SimSpec | None = None, objective: Objective | None = None, seed: int = 0,
             target_concurrency: float = 64.0, cold_start_s: float = 0.0,
             usd_per_gpu_hour: float = USD_PER_GPU_HOUR, host_cores: dict[str, int] | None = None,
             controller: Callable[[ControlState], dict[str, int]] | None = None, control_interval_s: float = 10.0,
             record_latencies: bool = False, progress: Callable[[float], None] | None = None,
             inventory: Inventory | None = None) -> tuple[PolicyResult, SimOutcome]:
    objective = objective or workflow.objective or Objective.ENERGY
    template = compile_workflow(workflow, sim)
    profiles = {c.name: c.profile for c in candidates}
    rate = arrivals.rate_per_s if arrivals.kind != "closed" else 0.0
    warm: list[str] = []
    if policy == "adaptive":
        from murakkab_lg.runtime.control import AdaptiveConfig
        from murakkab_lg.sim.adaptive import warm_alternatives

        plan = plan_for(policy, workflow, candidates, objective, rate or None)
        assign = {c.node: c.deployment for c in plan.choices}
        warm = warm_alternatives(plan, AdaptiveConfig())
        by_name = {c.name: c.deployment for c in candidates}
        deps = [*plan.deployments, *(by_name[w] for w in warm)]
    else:
        assign, deps = assignment_for(policy, workflow, candidates, objective, usd_per_gpu_hour, rate or None)
    fleet = build_fleet(template, assign, deps, profiles, rate, target_concurrency=target_concurrency,
                        cold_start_s=cold_start_s, inventory=inventory, warm=warm)
    route: dict[str, str] | Callable = assign
    if policy == "adaptive":
        from murakkab_lg.sim.adaptive import adaptive_chooser

        route = adaptive_chooser(plan, workflow, {d.name: d for d in fleet.deployments})
    if host_cores is None:  # CPU replicas share this machine's cores unless told otherwise
        host_cores = {d.host: os.cpu_count() or 1 for d in fleet.deployments if d.cpu_threads}
    simulation = Simulation(template, fleet.deployments, route, seed=seed, host_cores=host_cores,
                            controller=controller, control_interval_s=control_interval_s,
                            record_latencies=record_latencies)
    out = simulation.run(arrivals, progress=progress)
    labels = {d.name: d.label for d in fleet.deployments}
    return summarize(policy, out, rate_per_s=rate, assignment=assign, gpus=fleet.gpus, labels=labels,
                     usd_per_gpu_hour=usd_per_gpu_hour), out
