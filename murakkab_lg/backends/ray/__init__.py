"""Deployment replicas as Ray actors in placement groups: engines on a multi-node cluster.

Optional extra `murakkab-lg[ray]`; importing this package does not import Ray, only connecting
to a configured cluster does. See docs/cluster.md.
"""

from murakkab_lg.backends.ray.config import ClusterConfig, RayConfig
from murakkab_lg.backends.ray.engine import RayBackend, RayEngine
from murakkab_lg.backends.ray.resources import Bundle, NodeView, replica_bundle

__all__ = ("Bundle", "ClusterConfig", "NodeView", "RayBackend", "RayConfig", "RayEngine", "replica_bundle")
