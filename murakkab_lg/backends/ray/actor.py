"""The Ray actor that hosts one engine replica on whatever node Ray placed it.

It reuses the engine adapters (llama-server via LlamaCppEngine, vLLM via VllmEngine) for the
process itself, and only changes what differs on a cluster node:
- the engine binds the node's IP address instead of 127.0.0.1, so the runtime can reach it;
- a vLLM replica gets the GPUs Ray assigned to this actor (`ray.get_gpu_ids()`), not the indices
  the planner guessed, as its CUDA_VISIBLE_DEVICES.
The engine process dies with the actor: a graceful exit stops it (the engines' atexit), and a
killed actor's engine gets SIGTERM from the kernel (PR_SET_PDEATHSIG in backends/engines/_process).

This module does not import Ray at import time; `ray.remote` wraps the class in backends/ray/engine.py.
"""

from __future__ import annotations

import os
from typing import Any

from murakkab_lg.backends.engines import EngineAdapter, create_engine
from murakkab_lg.errors import TelemetryUnavailableError
from murakkab_lg.spec import Deployment, Placement, VllmSettings

__all__ = ("EngineHost",)


class EngineHost:
    """One replica's engine process, started, probed and stopped from inside a Ray actor."""

    def __init__(self, deployment: dict[str, Any], replica: int) -> None:
        import ray

        self.deployment = Deployment.model_validate(deployment)
        self.replica = replica
        self.node_id = ray.get_runtime_context().get_node_id()
        self.address = ray.util.get_node_ip_address()
        self.gpus = tuple(int(g) for g in ray.get_gpu_ids())
        self.engine: EngineAdapter | None = None
        self._nvml: Any = None
        self._nvml_note: str | None = None

    def _local(self) -> Deployment:
        """The deployment as this node runs it: one replica, on the GPUs Ray gave this actor."""
        dep = self.deployment.model_copy(update={"replicas": 1})
        if isinstance(dep.engine, VllmSettings) and dep.placement.device.lower() != "cpu":
            dep = dep.model_copy(update={"placement": Placement(device=dep.placement.device, gpus=self.gpus,
                                                                host=self.address)})
        return dep

    def start(self, timeout_s: float) -> dict[str, Any]:
        """Start the engine; returns where it listens and where it runs."""
        if self.engine is None:
            engine = create_engine(self._local(), 0)
            if hasattr(engine, "bind_host"):
                engine.bind_host = self.address
            self.engine = engine
        self.engine.start(timeout_s)
        return {"url": getattr(self.engine, "base_url", ""), "api_key": getattr(self.engine, "api_key", None),
                "node_id": self.node_id, "address": self.address,
                "pid": os.getpid(), "engine_pid": getattr(getattr(self.engine, "process", None), "pid", None),
                "gpus": list(self.gpus)}

    def healthy(self) -> bool:
        return self.engine is not None and self.engine.healthy()

    def cpu_seconds(self) -> float | None:
        return None if self.engine is None else self.engine.cpu_seconds()

    def gpu_energy_j(self) -> dict[int, float] | None:
        """Each of this actor's GPUs' total-energy counter (J) through NVML on this node; None without NVML."""
        if not self.gpus or self._nvml_note is not None:
            return None
        if self._nvml is None:
            from murakkab_lg.backends.telemetry.nvml import open_nvml

            try:
                self._nvml = open_nvml()
            except TelemetryUnavailableError as e:
                self._nvml_note = str(e)
                return None
        return {g: self._nvml.energy_j(g) for g in self.gpus}

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
