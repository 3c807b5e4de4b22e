"""The bounded schemathesis run over `murakkab serve`'s OpenAPI spec is part of the test suite,
so the README's one test command (and CI) always includes it: zero 5xx, responses as documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_schemathesis_finds_no_server_errors() -> None:
    if not (Path(sys.executable).parent / "schemathesis").exists():
        pytest.fail("schemathesis is not installed: `pip install -e '.[dev]'`")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "schemathesis_run.sh"), "50"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable}, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated, out[-2000:]
    assert int(generated.group(1)) >= 200 and generated.group(1) == generated.group(2)
