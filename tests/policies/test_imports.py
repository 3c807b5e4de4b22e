"""Importing a policy loads only spec, errors and its solver: no downloader, no HTTP, no processes.

A policy is a pure function that must import, test and benchmark alone. Each module is imported
in a fresh interpreter so earlier tests cannot have loaded anything for it. `zipfile` is a special
case: pydantic's plugin loader imports `importlib.metadata`, which imports `zipfile`, so the check
is "nothing forbidden beyond what the allowed third-party dependencies (pydantic, numpy) load
themselves", measured in the same kind of fresh interpreter, plus a strict check that no
murakkab-lg module outside spec, profile_spec, errors and policies is loaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import murakkab_lg.policies

FORBIDDEN = ("subprocess", "zipfile", "httpx")
ALLOWED_OWN = ("murakkab_lg", "murakkab_lg.spec", "murakkab_lg.profile_spec", "murakkab_lg.errors",
               "murakkab_lg.checks")  # spec types an Intent's check (json, math, re only)
POLICY_MODULES = [
    "murakkab_lg.policies",
    *sorted(f"murakkab_lg.policies.{m.name}" for m in pkgutil.iter_modules(murakkab_lg.policies.__path__)),
]

_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(body: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True,
                         text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return _loaded("import numpy\nimport pydantic\nclass M(pydantic.BaseModel):\n    x: int = 0\n")


def test_every_policy_module_is_listed() -> None:
    assert {"murakkab_lg.policies.milp", "murakkab_lg.policies.cascade", "murakkab_lg.policies.base"} <= set(
        POLICY_MODULES
    )


@pytest.mark.parametrize("module", POLICY_MODULES)
def test_importing_a_policy_loads_no_downloader_http_or_processes(module: str, baseline: set[str]) -> None:
    loaded = _loaded(f"import {module}")
    added = {m for m in FORBIDDEN if m in loaded and m not in baseline}
    assert not added, f"importing {module} loads {sorted(added)}"
    own = {m for m in loaded if m.startswith("murakkab_lg")}
    stray = {m for m in own if m not in ALLOWED_OWN and not m.startswith("murakkab_lg.policies")}
    assert not stray, f"importing {module} loads {sorted(stray)}"
    assert "murakkab_lg.catalog.pull" not in loaded
    assert "subprocess" not in loaded and "httpx" not in loaded


def test_catalog_profiles_does_not_load_the_downloader() -> None:
    loaded = _loaded("import murakkab_lg.catalog.profiles\nimport murakkab_lg.catalog")
    assert "murakkab_lg.catalog.pull" not in loaded
    assert "subprocess" not in loaded


def test_catalog_still_offers_the_downloader_names() -> None:
    import murakkab_lg.catalog as catalog
    from murakkab_lg.catalog.pull import cache_dir, verify

    assert catalog.cache_dir is cache_dir and catalog.verify is verify
    with pytest.raises(AttributeError):
        _ = catalog.nope
