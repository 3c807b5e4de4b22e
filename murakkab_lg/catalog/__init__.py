"""Models, hardware, engine configs and profiles: everything the planner needs to know.

`cache_dir` and `verify` come from the downloader (`catalog.pull`, which needs `subprocess` and
`zipfile`); they load on first use, so importing `murakkab_lg.catalog.profiles` (as the runtime
and the planner do) never loads the downloader. `pull` itself is not re-exported: a package
attribute named like its submodule would shadow the module. Use `murakkab_lg.catalog.pull.pull`.
"""

from __future__ import annotations

import importlib
from typing import Any

from murakkab_lg.catalog.models import EMBEDDED_LADDER, ModelSpec, embedded_model

__all__ = ("EMBEDDED_LADDER", "ModelSpec", "cache_dir", "embedded_model", "verify")

_LAZY = {"cache_dir": "murakkab_lg.catalog.pull", "verify": "murakkab_lg.catalog.pull"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'murakkab_lg.catalog' has no attribute {name!r}")
