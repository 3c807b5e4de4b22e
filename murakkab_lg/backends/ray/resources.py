"""From a planned deployment replica to the Ray resources it reserves, and back from Ray's view.

Pure functions over pydantic values (no Ray import), so the mapping is tested without a cluster:

- A llama.cpp replica reserves `CPU = threads`: the cores its threads run on.
- A vLLM replica on GPUs reserves `GPU` and the custom resource `gpu_type:<KIND>` (e.g.
  `{"gpu_type:H100": 1}`), plus one CPU for its API server. With tensor parallelism it takes
  `tensor_parallel_size` whole GPUs. A single-GPU replica takes the fraction of a GPU that its
  memory share gives it (`gpu_memory_utilization / 0.9`, the packer's cap), so replicas the packer
  co-located on one GPU fit on one GPU in Ray too, and a replica alone on a GPU takes all of it.
- `placement.host` other than "localhost" pins the replica to the Ray node(s) of that name: the
  node label `murakkab.host`, else its node name or IP address.

A GPU node declares its GPU type when it joins: `ray start --num-gpus 8 --resources
'{"gpu_type:H100": 8}'`; `cluster_inventory` reads those back as the planner's devices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import ConfigError
from murakkab_lg.spec import Deployment, Device, Inventory, LlamaCppSettings, VllmSettings

__all__ = (
    "GPU_TYPE_PREFIX",
    "HOST_LABEL",
    "Bundle",
    "NodeView",
    "cluster_inventory",
    "fits_somewhere",
    "node_view",
    "replica_bundle",
    "shortfall",
)

GPU_TYPE_PREFIX = "gpu_type:"
HOST_LABEL = "murakkab.host"
MEMORY_LABEL = "murakkab.gpu_memory_gb"
_PACKER_CAP = 0.9  # runtime.placement.DEFAULT_MAX_GPU_MEMORY_UTILIZATION: a share of cap is a whole GPU
_ANY_GPU = frozenset({"gpu", "cuda", "any"})
_LOCAL = frozenset({"", "localhost", "127.0.0.1"})
# Memory of one GPU by kind (vendor datasheets, largest common variant) for the planner's
# inventory; a node label `murakkab.gpu_memory_gb` overrides it (e.g. for a 40 GB A100).
GPU_MEMORY_GB = {"H100": 80.0, "H200": 141.0, "A100": 80.0, "B200": 180.0, "L40S": 48.0, "L4": 24.0, "A10G": 24.0}


class Bundle(BaseModel):
    """What one replica reserves: Ray resource amounts, and the node name it must land on (None: any)."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    replica: int
    resources: dict[str, float]
    host: str | None = None

    def describe(self) -> str:
        res = ", ".join(f"{k}: {v:g}" for k, v in sorted(self.resources.items()))
        return f"{{{res}}}" + (f" on node {self.host!r}" if self.host else "")


def _floor4(x: float) -> float:
    return math.floor(x * 10_000 + 1e-9) / 10_000  # Ray keeps resources to 1e-4


def replica_bundle(deployment: Deployment, replica: int = 0) -> Bundle | None:
    """The resources one replica reserves; None for engines Ray does not host (api, simulated)."""
    eng = deployment.engine
    res: dict[str, float]
    if isinstance(eng, LlamaCppSettings):
        res = {"CPU": float(eng.threads)}
    elif isinstance(eng, VllmSettings):
        device = deployment.placement.device
        if device.lower() == "cpu":
            res = {"CPU": 1.0}
        else:
            tp = eng.tensor_parallel_size
            gpus = float(tp) if tp > 1 else max(0.0001, _floor4(min(1.0, eng.gpu_memory_utilization / _PACKER_CAP)))
            res = {"CPU": 1.0, "GPU": gpus}
            if device.lower() not in _ANY_GPU:
                res[GPU_TYPE_PREFIX + device] = gpus
    else:
        return None
    host = deployment.placement.host
    return Bundle(deployment=deployment.name, replica=replica, resources=res,
                  host=None if host.lower() in _LOCAL else host)


class NodeView(BaseModel):
    """One Ray node as the backend sees it: names it answers to, and its resources."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    address: str
    name: str  # the `murakkab.host` label, else the node name Ray reports
    alive: bool
    head: bool
    total: dict[str, float]
    available: dict[str, float]
    labels: dict[str, str] = {}

    def answers_to(self, host: str) -> bool:
        return host in (self.name, self.address, self.labels.get(HOST_LABEL), self.node_id)

    def short(self) -> str:
        role = "head" if self.head else "worker"
        return f"node {self.name!r} ({self.node_id[:8]}, {self.address}, {role})"


def node_view(raw: Mapping[str, Any], available: Mapping[str, float] | None) -> NodeView:
    """A NodeView from one `ray.nodes()` entry and that node's available resources."""
    labels = dict(raw.get("Labels") or {})
    total = {k: float(v) for k, v in (raw.get("Resources") or {}).items()}
    return NodeView(
        node_id=raw["NodeID"], address=raw.get("NodeManagerAddress", ""),
        name=labels.get(HOST_LABEL) or raw.get("NodeName") or raw.get("NodeManagerAddress", ""),
        alive=bool(raw.get("Alive")), head="node:__internal_head__" in total, total=total,
        available={k: float(v) for k, v in (available if available is not None else total).items()}, labels=labels,
    )


def _public(resources: Mapping[str, float]) -> dict[str, float]:
    """Drop Ray's bookkeeping resources (placement-group shares, node ids, memory bytes)."""
    return {k: v for k, v in resources.items()
            if "_group_" not in k and not k.startswith("node:") and k not in ("memory", "object_store_memory")}


def shortfall(bundle: Bundle, nodes: Sequence[NodeView], *, now: bool = True) -> str:
    """Which resources on which node keep `bundle` out: per candidate node, each resource it lacks.

    `now=False` compares with each node's total (can it ever fit?), `now=True` with what is free.
    """
    lines = []
    candidates = [n for n in nodes if n.alive and (bundle.host is None or n.answers_to(bundle.host))]
    if bundle.host is not None and not candidates:
        names = ", ".join(sorted({n.name for n in nodes if n.alive})) or "none"
        return f"no live node is named {bundle.host!r} (nodes: {names})"
    for n in candidates:
        have = n.available if now else n.total
        short = [(k, v, have.get(k, 0.0)) for k, v in sorted(bundle.resources.items()) if have.get(k, 0.0) + 1e-9 < v]
        if short:
            what = "free" if now else "in total"
            lines.append(f"{n.short()}: " + ", ".join(f"{k} {got:g} {what} (needs {need:g})" for k, need, got in short))
    return "; ".join(lines)


def fits_somewhere(bundle: Bundle, nodes: Sequence[NodeView], *, now: bool) -> bool:
    for n in nodes:
        if not n.alive or (bundle.host is not None and not n.answers_to(bundle.host)):
            continue
        have = n.available if now else n.total
        if all(have.get(k, 0.0) + 1e-9 >= v for k, v in bundle.resources.items()):
            return True
    return False


def cluster_inventory(nodes: Sequence[NodeView]) -> Inventory:
    """The planner's devices from the cluster: each node's CPUs, and one Device per declared GPU.

    GPUs are typed by the node's `gpu_type:<KIND>` resource; their memory comes from the node label
    `murakkab.gpu_memory_gb`, else the datasheet figure for the kind.
    """
    devices: list[Device] = []
    for n in nodes:
        if not n.alive:
            continue
        cpus = n.total.get("CPU", 0.0)
        if cpus > 0:
            devices.append(Device(id="cpu", kind="cpu", memory_gb=n.total.get("memory", 0.0) / (1 << 30),
                                  compute_units=cpus, host=n.name))
        index = 0
        for key, count in sorted(_public(n.total).items()):
            if not key.startswith(GPU_TYPE_PREFIX):
                continue
            kind = key[len(GPU_TYPE_PREFIX):]
            memory = _gpu_memory_gb(n, kind)
            for _ in range(int(count)):
                devices.append(Device(id=f"gpu{index}", kind=kind, memory_gb=memory, host=n.name, gpu_index=index))
                index += 1
    return Inventory(devices=tuple(devices))


def _gpu_memory_gb(node: NodeView, kind: str) -> float:
    label = node.labels.get(MEMORY_LABEL)
    if label is not None:
        try:
            return float(label)
        except ValueError:
            raise ConfigError(f"{node.short()}: label {MEMORY_LABEL}={label!r} is not a number of GB") from None
    try:
        return GPU_MEMORY_GB[kind]
    except KeyError:
        raise ConfigError(
            f"{node.short()} declares {GPU_TYPE_PREFIX}{kind} but its GPU memory is unknown. To fix: start the "
            f"node with `--labels {MEMORY_LABEL}=<GB per GPU>`."
        ) from None
