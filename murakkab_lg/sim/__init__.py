"""What-if simulator: workflows under load on simulated, profile-driven deployments, in virtual time.

Everything it reports is labelled simulated. The decisions come from the product itself: the
policies' plans, the runtime's packer, and the runtime's per-call routing (`runtime.control.choose`)
for the `adaptive` policy; see docs/simulator.md for the model and its assumptions.
"""

from murakkab_lg.sim.metrics import PolicyResult
from murakkab_lg.sim.router import PerRequestRouter
from murakkab_lg.sim.scenario import assignment_for, load_sim_spec, simulate
from murakkab_lg.sim.simulator import Simulation
from murakkab_lg.sim.workload import Arrivals, SimSpec, compile_workflow

__all__ = (
    "Arrivals",
    "PerRequestRouter",
    "PolicyResult",
    "SimSpec",
    "Simulation",
    "assignment_for",
    "compile_workflow",
    "load_sim_spec",
    "simulate",
)
