"""Validation against reality: predict a real `murakkab demo` run from the shipped CPU profile.

Input: the JSON `murakkab demo --json FILE` writes (a `DemoResult`: per run, wall time, and per
node the model, engine settings, calls, tokens, median latency and estimated energy), the demo's
workflow (its annotations and edges; the caller passes them, the simulator does not import the demo
app), the shipped profiles, and optionally a probe (`benchmarks/demo_probe.py`: what the demo's
workload costs that the profile does not measure).

The simulator predicts time and energy *given the workload*, so the simulated run is told what the
real one did, and nothing it took time or energy to do:
- the closed loop: `concurrency` tickets in flight (LangGraph's batch with max_concurrency), `items`
  tickets in all, each node on the model and the engine settings (threads, parallel slots) the
  real run used, continuous batching up to the slots, llama.cpp engines sharing the host's cores;
- the tokens: each node's measured mean prompt and completion tokens per call, where the JSON
  records them (else the annotations' expected tokens; the check says which it used);
- from the probe, when given: the profile measured each model with every core as threads, so an
  engine with fewer threads runs at the probe's side-by-side ratio (prefill speed, time per token,
  power at 1 and 4 sequences); prompt tokens llama-server found in its prompt cache (the probe's
  replay of the demo's requests) are not prefilled. (The probe also measured the JSON grammar of
  `extract`'s response_format: no measurable decode cost, so nothing is added for it.)
- llama.cpp's own scheduling (`serial_prefill`, sim/engine.py): prompts in flight share the
  one-sequence prefill speed and decoding waits for them.
Errors are relative: (simulated - measured) / measured, per node and in total.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from murakkab_lg.catalog.profiles import DeploymentProfile
from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.engine import rates_from_profile
from murakkab_lg.sim.simulator import SimDeployment, Simulation
from murakkab_lg.sim.workload import Arrivals, compile_workflow
from murakkab_lg.spec import Workflow

__all__ = ("BOUND", "PROBE_PATH", "NodeCheck", "RunCheck", "load_probe", "node_settings", "replay_as_demo",
           "validate_demo")

BOUND = 0.15  # the goal: every total within 15% of the measurement
PROBE_PATH = Path(__file__).parent / "data" / "demo_probe.json"  # written by benchmarks/demo_probe.py
_LABEL = re.compile(r"^llamacpp t=(?P<threads>\d+) np=(?P<parallel>\d+)$")


class NodeCheck(BaseModel):
    node: str
    model: str
    engine: str  # "llamacpp t=1 np=4", as simulated
    calls: int
    input_tokens: float  # per call, as simulated (measured or annotated)
    cached_tokens: float  # per call, found in llama-server's prompt cache (the probe's replay); not prefilled
    output_tokens: float
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
    tokens_source: str  # "measured per node" or "annotations (the JSON records no prompt/completion split)"
    settings_source: str  # "recorded", "engine label" or "default (not recorded)"
    probe: str  # what of the probe was used, or why none


def _err(sim: float, real: float) -> float:
    return (sim - real) / real if real else float("nan")


def node_settings(node: Mapping[str, Any], cores: int) -> tuple[int, int, str]:
    """(threads, parallel slots, where they came from) of the engine a demo node ran on.

    Newer demo JSONs record them per node; older ones only in the `engine` label
    (`llamacpp t=1 np=4`); the oldest (2026-11-29) in neither, and ran the default then: every
    core as threads, 4 slots."""
    if node.get("threads") and node.get("parallel"):
        return int(node["threads"]), int(node["parallel"]), "recorded"
    m = _LABEL.match(str(node.get("engine", "")))
    if m:
        return int(m["threads"]), int(m["parallel"]), "engine label"
    return cores, 4, "default (not recorded)"


def profile_threads(profile: DeploymentProfile, default: int) -> int:
    """The threads a default-settings CPU row was measured with: every core of its machine
    (`AMD EPYC, 2 cores, ...`), else `default`."""
    m = re.search(r"(\d+) cores", profile.hardware)
    return int(m[1]) if m else default


def load_probe(path: Path = PROBE_PATH) -> dict[str, Any] | None:
    """The probe's JSON, or None where none was written."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the demo probe {path}: {e}. To fix: rerun benchmarks/demo_probe.py") from None


def engine_name(model: str, threads: int, parallel: int) -> str:
    return f"{model}@t{threads}-np{parallel}"


def _ratio(probe: Mapping[str, Any], model: str, threads: int, base_threads: int, parallel: int,
           c: int) -> tuple[float, float, float] | None:
    """(prefill speed, time per token, power) at `threads` over `base_threads`, at concurrency c."""
    eng = probe.get("engines", {})
    a, b = eng.get(engine_name(model, threads, parallel)), eng.get(engine_name(model, base_threads, parallel))
    if a is None or b is None:
        return None
    pa, pb = a["load"][str(c)], b["load"][str(c)]
    return pa["prefill_tok_s"] / pb["prefill_tok_s"], pa["tpot_s"] / pb["tpot_s"], pa["power_w"] / pb["power_w"]


def scale_threads(profile: DeploymentProfile, ratios: Mapping[int, tuple[float, float, float]]) -> DeploymentProfile:
    """The profile with each load point's prefill speed, time per token and power multiplied by the
    ratio measured at its concurrency (the nearest measured one where that is missing)."""
    pts = []
    for p in profile.load:
        r_pre, r_tpot, r_pow = ratios[min(ratios, key=lambda c: abs(c - p.concurrency))]
        power = (p.power_w if p.power_w is not None else p.energy_per_output_token_j * p.throughput_tok_s) * r_pow
        tpot = p.tpot_s * r_tpot
        pts.append(p.model_copy(update={
            "prefill_tok_s": p.prefill_tok_s * r_pre if p.prefill_tok_s else p.prefill_tok_s, "tpot_s": tpot,
            "throughput_tok_s": p.throughput_tok_s / r_tpot, "power_w": power,
            "energy_per_output_token_j": p.energy_per_output_token_j * r_pow * r_tpot}))
    return profile.model_copy(update={"load": tuple(pts)})


def _deployment(name: str, prof: DeploymentProfile, threads: int, parallel: int, host_cores: int,
                probe: Mapping[str, Any] | None) -> tuple[SimDeployment, bool]:
    """The engine as simulated, and whether the probe's thread ratios scaled its profile."""
    base = profile_threads(prof, host_cores)
    scaled = threads != base
    if scaled:
        ratios = {c: r for c in (1, 4)
                  if (r := _ratio(probe or {}, prof.model, threads, base, parallel, c)) is not None}
        if not ratios:
            raise ConfigError(
                f"the demo ran {prof.model!r} with {threads} thread(s), the profile was measured with {base}, and no "
                "probe measured the difference. To fix: run benchmarks/demo_probe.py on this demo JSON.")
        prof = scale_threads(prof, ratios)
    return SimDeployment(name=name, rates=rates_from_profile(prof, parallel, serial_prefill=True), cpu_threads=threads,
                         label="simulated from the shipped CPU profile"), scaled


def _node_tokens(node: Mapping[str, Any], workflow: Workflow, replay: Mapping[str, Any]
                 ) -> tuple[float, float, float, bool]:
    """(prompt, cached prompt, completion) tokens per call, and whether they were measured: the
    run's own split where it has one, else the annotation; cached: the probe replay's share, where
    it replayed this node on the same model."""
    calls = int(node.get("calls") or 0)
    if calls and node.get("prompt_tokens") and node.get("completion_tokens"):
        inp, out, measured = node["prompt_tokens"] / calls, node["completion_tokens"] / calls, True
    else:
        intent = next((w.intent for w in workflow.nodes if w.name == node["name"]), None)
        if intent is None:
            raise ConfigError(f"demo node {node['name']!r} is not in workflow {workflow.name!r}. To fix: pass the "
                              "demo's own workflow (murakkab_lg.demo.graph).")
        inp, out, measured = float(intent.expected_input_tokens), float(intent.expected_output_tokens), False
    rp = replay.get(node["name"], {})
    cached = inp * rp["cached_share"] if str(rp.get("engine", "")).split("@")[0] == node["model"] else 0.0
    return inp, cached, out, measured


def validate_demo(demo: Mapping[str, Any], workflow: Workflow, profiles: Mapping[str, DeploymentProfile], *,
                  host_cores: int, probe: Mapping[str, Any] | None = None, seed: int = 0) -> list[RunCheck]:
    """One RunCheck per run in the demo JSON (static, planned).

    `profiles` maps model names to their default-settings profile rows, measured with every core of
    their machine as threads (`host_cores` where the row does not say).
    """
    cores = int(demo.get("cores") or host_cores)
    items, conc = int(demo["items"]), int(demo["concurrency"])
    checks = []
    for run_name in ("static", "planned"):
        run = demo.get(run_name)
        if run is None:
            raise ConfigError(f"demo JSON has no {run_name!r} run. To fix: pass the file `murakkab demo --json` wrote.")
        replay = (probe or {}).get("replay", {}).get(run_name, {}).get("nodes", {})
        assign: dict[str, str] = {}
        sims: dict[str, SimDeployment] = {}
        tokens: dict[str, tuple[float, float, float]] = {}  # node -> input, cached, output per call
        measured_tokens, setting_src, probe_used = True, set(), set()
        for n in run["nodes"]:
            model = n["model"]
            if model not in profiles:
                raise ConfigError(f"demo node {n['name']!r} ran {model!r}, for which no profile was given. "
                                  "To fix: pass the shipped CPU profile (catalog.embedded.shipped_profiles()).")
            threads, parallel, src = node_settings(n, cores)
            setting_src.add(src)
            name = engine_name(model, threads, parallel)
            assign[n["name"]] = name
            if name not in sims:
                sims[name], scaled = _deployment(name, profiles[model], threads, parallel, host_cores, probe)
                if scaled:
                    probe_used.add("thread ratios")
            inp, cached, out, measured = _node_tokens(n, workflow, replay)
            measured_tokens &= measured
            if cached:
                probe_used.add("prompt cache")
            tokens[n["name"]] = (inp, cached, out)
        template = compile_workflow(workflow)
        template = replace(template, nodes=tuple(
            replace(t, input_tokens=tokens[t.name][0] - tokens[t.name][1],
                    output_tokens=tokens[t.name][2]) if t.name in tokens else t
            for t in template.nodes))
        sim = Simulation(template, list(sims.values()), assign, seed=seed, host_cores={"localhost": cores},
                         record_latencies=True)
        res = sim.run(Arrivals(kind="closed", clients=conc, total=items))
        nodes = []
        for n in run["nodes"]:
            st = res.nodes[n["name"]]
            p50 = statistics.median(st.latencies_s) if st.latencies_s else 0.0
            inp, cached, out = tokens[n["name"]]
            nodes.append(NodeCheck(
                node=n["name"], model=n["model"], engine="llamacpp t={} np={}".format(*node_settings(n, cores)[:2]),
                calls=st.calls, input_tokens=inp, cached_tokens=cached, output_tokens=out,
                measured_p50_s=n["p50_s"], simulated_p50_s=p50, p50_error=_err(p50, n["p50_s"]),
                measured_energy_j=n["energy_j"], simulated_energy_j=st.energy_j,
                energy_error=_err(st.energy_j, n["energy_j"])))
        wall_err, e_err = _err(res.end_s, run["wall_s"]), _err(res.energy_j, run["energy_j"])
        checks.append(RunCheck(
            run=run_name, items=items, concurrency=conc, measured_wall_s=run["wall_s"], simulated_wall_s=res.end_s,
            wall_error=wall_err, measured_energy_j=run["energy_j"], simulated_energy_j=res.energy_j,
            energy_error=e_err, nodes=nodes, within_bound=abs(wall_err) <= BOUND and abs(e_err) <= BOUND,
            tokens_source="measured per node" if measured_tokens else
            "annotations (the JSON records no prompt/completion split)",
            settings_source=", ".join(sorted(setting_src)),
            probe=", ".join(sorted(probe_used)) if probe_used else ("none given" if probe is None else "not needed")))
    return checks


def replay_as_demo(probe: Mapping[str, Any], items: int, concurrency: int, cores: int) -> dict[str, Any]:
    """The probe's replay of the demo's requests as a demo JSON (totals only; per node figures 0),
    so `validate_demo` can check the engine model without the demo's own overhead (LangGraph,
    the runtime and scoring share the cores with the engines in a real demo run)."""
    out: dict[str, Any] = {"items": items, "concurrency": concurrency, "cores": cores}
    for run, rp in probe["replay"].items():
        nodes = []
        for name, x in rp["nodes"].items():
            model, _, settings = x["engine"].partition("@")
            m = re.fullmatch(r"t(\d+)-np(\d+)", settings)
            if m is None:
                raise ConfigError(f"probe replay engine {x['engine']!r} is not <model>@t<threads>-np<slots>")
            nodes.append({"name": name, "model": model, "threads": int(m[1]), "parallel": int(m[2]),
                          "calls": x["calls"], "prompt_tokens": x["prompt_tokens_per_call"] * x["calls"],
                          "completion_tokens": x["completion_tokens_per_call"] * x["calls"],
                          "p50_s": 0.0, "energy_j": 0.0})
        out[run] = {"wall_s": rp["wall_s"], "energy_j": rp["energy_j"], "nodes": nodes}
    return out

