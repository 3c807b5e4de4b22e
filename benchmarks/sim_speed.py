"""Why the simulator has its own heap core: the same queue in simpy and in `murakkab_lg.sim`, timed.

The case both can express directly: M/D/1 (Poisson arrivals, one sequence at a time, fixed service
0.1 s, load 0.5), N arrivals. simpy gets its idiomatic form (a process per arrival, a Resource of
capacity 1, a timeout for the service); the heap core runs the real simulator (a one-node workflow
on a one-slot replica), which does more per request (DAG bookkeeping, energy accounting). Both
report CPU seconds (process time, so a shared machine skews them less than wall time) and the
mean wait, which must agree with each other and with Pollaczek-Khinchine (0.05 s).

    pip install 'murakkab-lg[simpy]'   # simpy is only needed for this comparison
    python benchmarks/sim_speed.py [--arrivals 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from murakkab_lg.catalog.profiles import DeploymentProfile, LoadPoint, Provenance
from murakkab_lg.sim.engine import rates_from_profile
from murakkab_lg.sim.simulator import SimDeployment, Simulation
from murakkab_lg.sim.workload import Arrivals, compile_workflow
from murakkab_lg.spec import Intent, Workflow, WorkflowNode

RATE, SERVICE = 5.0, 0.1


def heap_core(n: int) -> tuple[float, float]:
    prof = DeploymentProfile(
        deployment="d", model="m", engine="simulated", hardware="-", energy_label="estimated",
        provenance=Provenance(kind="synthetic", source="synthetic: speed comparison", date="2026-12-04"),
        load=(LoadPoint(concurrency=1, prefill_tok_s=None, tpot_s=SERVICE / 10, throughput_tok_s=100.0, power_w=1.0,
                        energy_per_output_token_j=0.01),))
    wf = Workflow(name="q", nodes=(WorkflowNode(name="a", intent=Intent("answer", expected_output_tokens=10)),))
    sim = Simulation(compile_workflow(wf), [SimDeployment(name="d", rates=rates_from_profile(prof, 1))], {"a": "d"},
                     seed=1)
    t = time.process_time()
    out = sim.run(Arrivals(rate_per_s=RATE, duration_s=n / RATE))
    return time.process_time() - t, float(out.completion_s.mean()) - SERVICE


def simpy_core(n: int) -> tuple[float, float]:
    import simpy

    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0.0, n / RATE, rng.poisson(n))).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits: list[float] = []

    def customer(env: simpy.Environment):  # type: ignore[no-untyped-def]
        t0 = env.now
        with server.request() as req:
            yield req
            waits.append(env.now - t0)
            yield env.timeout(SERVICE)

    def source(env: simpy.Environment):  # type: ignore[no-untyped-def]
        last = 0.0
        for t in times:
            yield env.timeout(t - last)
            last = t
            env.process(customer(env))

    env.process(source(env))
    t = time.process_time()
    env.run()
    return time.process_time() - t, float(np.mean(waits))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arrivals", type=int, default=200_000)
    n = ap.parse_args().arrivals
    h_cpu, h_wait = heap_core(n)
    try:
        s_cpu, s_wait = simpy_core(n)
    except ImportError:
        print("simpy is not installed: pip install 'murakkab-lg[simpy]'")
        return 1
    print(f"M/D/1, {n:,} arrivals, mean wait (P-K: {0.5 * SERVICE / (2 * 0.5):.3f} s):")
    print(f"  murakkab_lg.sim heap core: {h_cpu:.2f} CPU s, mean wait {h_wait:.4f} s")
    print(f"  simpy {__import__('simpy').__version__}:             {s_cpu:.2f} CPU s, mean wait {s_wait:.4f} s")
    print(f"  simpy / heap core: {s_cpu / h_cpu:.2f}x CPU time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
