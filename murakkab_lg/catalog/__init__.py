"""Models, hardware, engine configs and profiles: everything the planner needs to know."""

from murakkab_lg.catalog.models import EMBEDDED_LADDER, ModelSpec, embedded_model
from murakkab_lg.catalog.pull import cache_dir, pull, verify

__all__ = ("EMBEDDED_LADDER", "ModelSpec", "cache_dir", "embedded_model", "pull", "verify")
