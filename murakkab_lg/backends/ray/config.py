"""The `cluster: {ray: {...}}` section of the runtime config file.

    cluster:
      ray:
        address: auto               # auto (the cluster `ray start` left on this machine), local
                                    # (a one-node Ray inside this process), host:port or ray://host:port
        namespace: murakkab         # Ray namespace of the engine actors
        placement_timeout_s: 30     # how long a placement group may wait for resources to free up
        health_timeout_s: 5         # an actor that does not answer a health check in this time is dead

Validated here without importing Ray: only a configured runtime imports it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ("ClusterConfig", "RayConfig")


class RayConfig(BaseModel):
    """Where the Ray cluster is and how long to wait on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = "auto"
    namespace: str = "murakkab"
    placement_timeout_s: Annotated[float, Field(gt=0.0)] = 30.0
    health_timeout_s: Annotated[float, Field(gt=0.0)] = 5.0

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        v = v.strip()
        if v in ("auto", "local") or v.startswith("ray://") or ":" in v:
            return v
        raise ValueError(f"address {v!r} must be 'auto', 'local', 'host:port' or 'ray://host:port'")


class ClusterConfig(BaseModel):
    """Where deployments run when not as child processes of the runtime (today: Ray)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ray: RayConfig | None = None
