"""`murakkab plan TARGET [--policy] [--objective] [--json PATH] [--png FILE]`: plan a workflow and explain it.

TARGET is a LangGraph graph as `package.module:attr` (a StateGraph, a compiled graph, a function
of no arguments returning one, or a `Workflow`), or a YAML/JSON workflow file (format in
docs/planner.md).

Candidates, by default (`--candidates auto`): what this machine and the config can run, that is
the embedded CPU deployments that have a profile, the file's `deployments:` and `--profiles`
rows, and the published GPU rows only for GPU kinds in the inventory (`--inventory`, the file's
`inventory:`, else the GPUs NVML sees here). Planning a 2-core laptop's workflow onto a B200 it
does not have is a choice the user makes explicitly: `--candidates all` or `published`.
A plan whose quality figures mix sources (model-card benchmarks and in-house evals are not one
scale) says so under its table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.spec import Deployment, Intent, Inventory, Objective, Workflow, WorkflowNode

__all__ = ("build_parser", "load_workflow_file", "run")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Plan a workflow and explain every choice.")
    p.add_argument("target", help="`package.module:attr` (a LangGraph graph or Workflow) or a .yaml/.json file")
    p.add_argument("--policy", default="milp", help="milp (default), greedy, cascade or static")
    p.add_argument("--objective", choices=[o.value for o in Objective], default=None,
                   help="what to minimise (default: the workflow's, else energy)")
    p.add_argument("--slo", type=float, default=None, help="end-to-end latency SLO in seconds (overrides)")
    p.add_argument("--candidates", choices=("auto", "all", "embedded", "published"), default="auto",
                   help="which shipped deployments to choose from. auto (default): the embedded CPU rows, plus "
                   "published GPU rows for the GPUs in the inventory (--inventory, the file's, else what NVML "
                   "sees here); all / published: every published GPU row, with or without an inventory")
    p.add_argument("--profiles", action="append", default=[], metavar="FILE",
                   help="extra profile file (JSON, `murakkab profile` output); may repeat")
    p.add_argument("--inventory", metavar="FILE", help="devices to fit (YAML/JSON `devices: [...]`)")
    p.add_argument("--json", metavar="PATH", help="also write the plan as JSON (`-`: stdout, no table)")
    p.add_argument("--top", type=int, default=3, help="rejected alternatives shown per node (default 3)")
    p.add_argument("--png", metavar="FILE", help="also draw the plan (DAG with each node's deployment, quality "
                   "vs floor, predicted latency and energy) to FILE; needs the `plot` extra")
    return p


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    import yaml

    try:
        return yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ConfigError(f"{path} is not valid {kind}: {e}") from None


def _edge(e: Any, where: str) -> tuple[str, str]:
    if isinstance(e, str) and "->" in e:
        a, b = (s.strip() for s in e.split("->", 1))
        return a, b
    if isinstance(e, list | tuple) and len(e) == 2:
        return str(e[0]), str(e[1])
    raise ConfigError(f"{where}: edge {e!r} must be 'a -> b' or [a, b]")


def _workflow(data: Any, where: str) -> Workflow:
    if not isinstance(data, dict) or "nodes" not in data:
        raise ConfigError(f"{where}: a workflow needs `nodes:` (see docs/planner.md)")
    raw = data["nodes"]
    items = raw.items() if isinstance(raw, dict) else ((n.get("name"), n) for n in raw)
    nodes = []
    for name, spec in items:
        if not name:
            raise ConfigError(f"{where}: every node in a `nodes:` list needs a `name`")
        spec = {"intent": spec} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}
        try:
            nodes.append(WorkflowNode(name=str(name), intent=Intent.model_validate(spec)))
        except ValueError as e:
            raise ConfigError(f"{where}: node {name!r}: {e}") from None
    try:
        return Workflow(name=data.get("name", Path(where).stem), nodes=tuple(nodes),
                        edges=tuple(_edge(e, where) for e in data.get("edges", ())),
                        latency_slo_s=data.get("latency_slo_s"), objective=data.get("objective"),
                        arrival_rate_per_s=data.get("arrival_rate_per_s"))
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_workflow_file(path: str | Path) -> tuple[list[Workflow], Inventory | None, list[Deployment]]:
    """Workflows (one, or several under `workflows:`), the optional inventory and deployments."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level (see docs/planner.md)")
    wfs = [_workflow(w, f"{path}[{i}]") for i, w in enumerate(data["workflows"])] if "workflows" in data else [
        _workflow(data, str(path))]
    try:
        inv = Inventory.model_validate(data["inventory"]) if data.get("inventory") else None
        deps = [Deployment.model_validate(d) for d in data.get("deployments", ())]
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    return wfs, inv, deps


_TARGET_KINDS = ("a LangGraph StateGraph or compiled graph (functional-API `@entrypoint`s too), a "
                 "murakkab_lg `Workflow`, or a function of no arguments that returns one")


def _is_graph(obj: Any) -> bool:
    return isinstance(obj, Workflow) or hasattr(obj, "get_graph") or hasattr(obj, "compile")


def _from_python(target: str, slo: float | None) -> Workflow:
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {target!r}: {e}. To fix: give `package.module:attr` importable from "
                          "the current directory.") from None
    if callable(obj) and not _is_graph(obj):
        required = _required_params(obj)
        if required:
            raise ConfigError(
                f"{target!r} is a function that needs arguments ({', '.join(required)}), and `murakkab plan` "
                f"calls it with none. The target must be {_TARGET_KINDS}. To fix: point at a module-level "
                f"graph, or add a wrapper such as `def graph(): return {attr}(...)` and plan `{module_name}:graph`.")
        obj = obj()
    if isinstance(obj, Workflow):
        return obj.model_copy(update={"latency_slo_s": slo}) if slo else obj
    if not _is_graph(obj):
        raise ConfigError(f"{target!r} is a {type(obj).__name__}, not a graph. The target must be {_TARGET_KINDS}.")
    from murakkab_lg.integrations.langgraph.extract import workflow_from_graph

    return workflow_from_graph(obj, name=attr, latency_slo_s=slo)


def _required_params(fn: Any) -> list[str]:
    """Parameters `fn()` would be missing; [] where the signature cannot be read (then just call it)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _runs_on(dep: Deployment, inventory: Inventory) -> bool:
    """Can some device of `inventory` host `dep`? (Hosted `api` deployments need none.)"""
    if dep.engine.engine == "api":
        return True
    want = dep.placement.device.lower()
    kinds = {d.kind.lower() for d in inventory.devices}
    if want in ("gpu", "cuda"):
        return bool(kinds - {"cpu"})
    return want in kinds


def _local_inventory(kind: str, inventory: Inventory | None) -> tuple[Inventory | None, str | None]:
    """For `auto`: the inventory to plan on and a note on what was left out, if anything."""
    if kind != "auto" or inventory is not None:
        return inventory, None
    from murakkab_lg.backends.telemetry.inventory import detect_inventory

    found, why = detect_inventory()
    if any(d.kind.lower() != "cpu" for d in found.devices):
        return found, None
    return None, (f"planned over this machine's CPU deployments only (no GPU here: {why or 'NVML sees none'}). "
                  "Published GPU rows need an inventory (--inventory FILE or `inventory:` in the file) or "
                  "--candidates all.")


def _candidates(kind: str, profile_files: list[str], extra: list[Deployment],  # type: ignore[no-untyped-def]
                inventory: Inventory | None = None):
    from murakkab_lg.catalog.profiles import ProfileStore, read_profile_file
    from murakkab_lg.policies import Candidate

    def runnable(found: list[Deployment]) -> list[Deployment]:  # auto: what the inventory's hardware runs
        return [d for d in found if _runs_on(d, inventory)] if kind == "auto" and inventory else found

    store, deps = ProfileStore(), runnable(list(extra))
    if kind in ("auto", "all", "embedded"):
        from murakkab_lg.catalog.embedded import embedded_deployments, shipped_profiles

        embedded = runnable(embedded_deployments())
        if embedded:
            shipped = shipped_profiles()
            store.add(shipped, "; ".join(shipped.sources))
            deps += embedded
    if kind in ("all", "published") or (kind == "auto" and inventory is not None):
        from murakkab_lg.catalog.published import published_deployments, published_profiles

        published = runnable(published_deployments())
        if published:
            store.add(published_profiles(), "published: ML.ENERGY leaderboard + model cards")
            deps += published
    for f in profile_files:
        store.add(read_profile_file(f).profiles, f)
    out = {d.name: Candidate(deployment=d, profile=store.get(d.name)) for d in deps if store.get(d.name)}
    if not out:
        raise ConfigError("no deployment has a profile to plan with. To fix: run `murakkab profile`, pass "
                          "--profiles FILE, or use --candidates all.")
    return tuple(out.values()), "; ".join(store.sources)


def _quality_note(plan, candidates) -> str | None:  # type: ignore[no-untyped-def]
    """Say so when the plan compares quality figures from sources that are not one scale."""
    from murakkab_lg.explain import quality_sources_note

    kinds = {c.name: c.profile.provenance.kind for c in candidates}
    return quality_sources_note(plan, kinds)


def run(args: argparse.Namespace) -> int:
    from murakkab_lg import explain
    from murakkab_lg.policies import PlanningProblem, get_policy
    from murakkab_lg.policies.milp import MilpPolicy, plan_many

    inventory, extra = None, []
    if args.target.lower().endswith((".yaml", ".yml", ".json")):
        wfs, inventory, extra = load_workflow_file(args.target)
        if args.slo:
            wfs = [w.model_copy(update={"latency_slo_s": args.slo}) for w in wfs]
    elif ":" in args.target:
        wfs = [_from_python(args.target, args.slo)]
    else:
        raise ConfigError(f"target {args.target!r} is neither `module:attr` nor a .yaml/.json file")
    if args.inventory:
        try:
            inventory = Inventory.model_validate(_read(Path(args.inventory)))
        except ValueError as e:
            raise ConfigError(f"{args.inventory}: {e}") from None
    inventory, scope_note = _local_inventory(args.candidates, inventory)
    cands, source = _candidates(args.candidates, args.profiles, extra, inventory)
    objective = Objective(args.objective) if args.objective else (wfs[0].objective or Objective.ENERGY)
    policy = get_policy(args.policy)
    try:
        if isinstance(policy, MilpPolicy):
            plans = plan_many(wfs, cands, inventory, objective, policy=policy, profile_source=source)
        else:
            plans = [policy.plan(PlanningProblem(workflow=w, candidates=cands, objective=objective,
                                                 inventory=inventory, profile_source=source)) for w in wfs]
    except PlanInfeasibleError as e:
        if scope_note is None:
            raise
        raise PlanInfeasibleError(f"{e} Note: {scope_note}", node=e.node, constraint=e.constraint,
                                  best=e.best) from None
    notes = [[n for n in (scope_note, _quality_note(p, cands)) if n] for p in plans]
    if args.json:
        explain.write_json(args.json, plans, wfs, top=args.top, notes=notes)
    if args.png:
        from murakkab_lg.figures import plan_figure, save

        save(plan_figure(plans, wfs), args.png)
    if args.json != "-":
        console = Console()
        for plan, wf, note in zip(plans, wfs, notes, strict=True):
            explain.render(plan, wf, console=console, top=args.top, notes=note)
    return 0
