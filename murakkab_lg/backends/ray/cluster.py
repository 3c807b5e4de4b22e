"""One connection to a Ray cluster: its nodes, and placement groups that either fit or say why not.

Ray is imported here, lazily, and only by a runtime configured for it. A placement group that
cannot be placed would stay PENDING forever, so `reserve` never waits blindly: a bundle no node
could ever hold fails at once, and one that waits for resources to free up gives up after
`placement_timeout_s`; both errors name the resource that ran out on each node, from Ray's view.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from types import ModuleType
from typing import Any

from murakkab_lg.backends.ray.config import RayConfig
from murakkab_lg.backends.ray.resources import Bundle, NodeView, cluster_inventory, fits_somewhere, node_view, shortfall
from murakkab_lg.errors import ConfigError, PlanInfeasibleError
from murakkab_lg.spec import Inventory

__all__ = ("RayCluster", "import_ray")

_log = logging.getLogger("murakkab_lg.ray")
_NODE_ID_LABEL = "ray.io/node-id"


def import_ray() -> ModuleType:
    """The `ray` module, or a ConfigError naming the extra that provides it."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(
            f"the runtime is configured for a Ray cluster (cluster.ray) but Ray cannot be imported ({e}). "
            "To fix: `pip install 'murakkab-lg[ray]'` on this machine and on every node of the cluster."
        ) from None
    return ray


class RayCluster:
    """The cluster a config names; connects on first use and is shared by all engines of a runtime."""

    def __init__(self, config: RayConfig) -> None:
        self.config = config
        self._lock = threading.Lock()

    def connect(self) -> ModuleType:
        """ray, initialised against the configured cluster (reused when this process already is)."""
        ray = import_ray()
        with self._lock:
            if ray.is_initialized():
                return ray
            local = self.config.address == "local"
            kwargs: dict[str, Any] = {"namespace": self.config.namespace, "log_to_driver": False}
            if local:
                kwargs["include_dashboard"] = False
            try:
                ray.init(address=None if local else self.config.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {self.config.address!r}: {e}. To fix: start one "
                    "(`ray start --head`) or set cluster.ray.address to its address (see docs/cluster.md)."
                ) from None
        return ray

    def nodes(self) -> list[NodeView]:
        """Every node Ray knows, alive or dead, with its total and available resources."""
        ray = self.connect()
        try:
            from ray._private.state import available_resources_per_node

            free: dict[str, dict[str, float]] | None = available_resources_per_node()
        except Exception as e:  # a private API: without it, totals stand in and errors say so
            _log.debug("per-node available resources unavailable: %s", e)
            free = None
        return [node_view(n, None if free is None else free.get(n["NodeID"], {})) for n in ray.nodes()]

    def inventory(self) -> Inventory:
        """The cluster's CPUs and typed GPUs as planner devices (host = node name)."""
        return cluster_inventory(self.nodes())

    def reserve(self, bundle: Bundle) -> Any:
        """A ready placement group holding `bundle`, or PlanInfeasibleError naming what ran out where."""
        ray = self.connect()
        from ray.util.placement_group import placement_group

        what = f"deployment {bundle.deployment!r} replica {bundle.replica} needs {bundle.describe()}"
        nodes = self.nodes()
        if not fits_somewhere(bundle, nodes, now=False):
            raise PlanInfeasibleError(
                f"{what}, which no node of the Ray cluster has: {shortfall(bundle, nodes, now=False)}. To fix: "
                "add a node with those resources (`ray start --address ... --num-gpus N --resources "
                "'{\"gpu_type:KIND\": N}'`), or lower threads / tensor_parallel_size / replicas.",
                constraint="capacity",
            )
        selector = None
        if bundle.host is not None:
            ids = [n.node_id for n in nodes if n.alive and n.answers_to(bundle.host)]
            selector = [{_NODE_ID_LABEL: ids[0] if len(ids) == 1 else f"in({','.join(ids)})"}]
        pg = placement_group([bundle.resources], strategy="STRICT_PACK",
                             name=f"murakkab:{bundle.deployment}#{bundle.replica}", bundle_label_selector=selector)
        timeout = self.config.placement_timeout_s
        try:
            ray.get(pg.ready(), timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            self.release(pg)
            raise PlanInfeasibleError(
                f"{what} and the Ray cluster could not place it within {timeout:g} s: "
                f"{shortfall(bundle, self.nodes(), now=True) or 'resources were taken meanwhile'}. To fix: stop "
                "other deployments or actors, add nodes, or raise cluster.ray.placement_timeout_s.",
                constraint="capacity",
            ) from None
        return pg

    def release(self, pg: Any) -> None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):  # already gone with its node or the cluster
            remove_placement_group(pg)

    def groups(self) -> dict[str, list[str]]:
        """Node id -> names of the placement groups holding resources there (ours: `murakkab:<deployment>#<i>`)."""
        self.connect()
        from ray.util.placement_group import placement_group_table

        out: dict[str, list[str]] = {}
        for pg in placement_group_table().values():
            if pg.get("state") == "CREATED":
                for node in set((pg.get("bundles_to_node_id") or {}).values()):
                    out.setdefault(node, []).append(pg.get("name") or pg.get("placement_group_id", "")[:8])
        return {k: sorted(v) for k, v in out.items()}

    def node_of(self, pg: Any) -> str | None:
        """The node id the placement group's bundle landed on."""
        from ray.util.placement_group import placement_group_table

        return (placement_group_table(pg).get("bundles_to_node_id") or {}).get(0)
