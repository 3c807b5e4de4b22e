"""The reported figures of a simulated run, as one pydantic value (what the table, plots and JSON show)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from murakkab_lg.sim.simulator import SimOutcome

__all__ = ("USD_PER_GPU_HOUR", "USD_PER_GPU_HOUR_SOURCE", "DeploymentResult", "PolicyResult", "summarize")

# The one price in the results, an assumption with a source: AWS EC2 Capacity Blocks for ML,
# p5.48xlarge (8x H100) in US East, "effective accelerator hourly rate" $4.916 (the pricing page's
# table for reservations made until 2025-01-01). Change it with --usd-per-gpu-hour.
USD_PER_GPU_HOUR = 4.916
USD_PER_GPU_HOUR_SOURCE = ("assumed: AWS EC2 Capacity Blocks p5.48xlarge (H100) effective accelerator hourly rate, "
                           "US East, rates to 2025-01-01")


class DeploymentResult(BaseModel):
    name: str
    replicas: int
    gpus: int
    utilisation: float  # busy time / (replicas x horizon)
    energy_j: float
    label: str


class PolicyResult(BaseModel):
    """One policy at one arrival rate. Every figure is simulated from the profiles named in `profiles`."""

    policy: str
    label: str = "simulated"
    rate_per_s: float
    duration_s: float
    started: int
    completed: int
    p50_s: float
    p95_s: float
    mean_s: float
    latency_slo_s: float | None
    slo_attainment: float | None  # share of started runs that finished within the SLO
    energy_j: float
    energy_per_workflow_j: float
    gpus: int
    gpu_hours: float
    usd_per_gpu_hour: float
    cost_usd: float
    cost_per_1k_workflows_usd: float
    assignment: dict[str, str]
    deployments: list[DeploymentResult]
    events: int
    wall_s: float
    completion_s: list[float] = []  # kept for the CDF plot; dropped from the JSON on request

    def row(self) -> dict[str, float | int | str | None]:
        return self.model_dump(exclude={"completion_s", "deployments", "assignment"})


def summarize(policy: str, out: SimOutcome, *, rate_per_s: float, assignment: dict[str, str], gpus: int,
              labels: dict[str, str], usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
              keep_samples: int = 2000) -> PolicyResult:
    c = out.completion_s
    p50, p95, mean = (float(np.percentile(c, 50)), float(np.percentile(c, 95)), float(c.mean())) if len(c) else (
        float("nan"),) * 3
    slo = out.latency_slo_s
    att = float(np.count_nonzero(c <= slo)) / out.started if slo is not None and out.started else None
    gpu_h = gpus * out.horizon_s / 3600.0
    cost = gpu_h * usd_per_gpu_hour
    deps = [DeploymentResult(name=n, replicas=d.replicas, gpus=d.gpus,
                             utilisation=d.busy_s / (d.replicas * out.end_s) if out.end_s else 0.0,
                             energy_j=d.energy_j, label=labels.get(n, "simulated"))
            for n, d in out.deployments.items()]
    step = max(1, len(c) // keep_samples)
    return PolicyResult(
        policy=policy, rate_per_s=rate_per_s, duration_s=out.horizon_s, started=out.started, completed=out.completed,
        p50_s=p50, p95_s=p95, mean_s=mean, latency_slo_s=slo, slo_attainment=att, energy_j=out.energy_j,
        energy_per_workflow_j=out.energy_j / out.completed if out.completed else float("nan"), gpus=gpus,
        gpu_hours=gpu_h, usd_per_gpu_hour=usd_per_gpu_hour, cost_usd=cost,
        cost_per_1k_workflows_usd=1000 * cost / out.completed if out.completed else float("nan"),
        assignment=assignment, deployments=deps, events=out.events, wall_s=out.wall_s,
        completion_s=[float(x) for x in np.sort(c)[::step]])
