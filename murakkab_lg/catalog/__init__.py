"""Models, hardware, engine configs and profiles: everything the planner needs to know.

`pull` is deliberately not re-exported here: a package attribute named like its submodule
`catalog.pull` would shadow the module. Use `murakkab_lg.catalog.pull.pull`.
"""

from murakkab_lg.catalog.models import EMBEDDED_LADDER, ModelSpec, embedded_model
from murakkab_lg.catalog.pull import cache_dir, verify

__all__ = ("EMBEDDED_LADDER", "ModelSpec", "cache_dir", "embedded_model", "verify")
