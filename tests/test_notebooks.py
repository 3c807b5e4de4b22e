"""The example notebooks as committed: no outputs, and a first cell that says what the reader learns.

CI executes them separately (`pytest --nbmake examples/notebooks`, from .ci/run); this checks what
is in git, so stale outputs and numbers never land in a diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "examples" / "notebooks").glob("*.ipynb"))
FIX = "To fix: python scripts/strip_notebooks.py, then commit again."


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None or "execution" in c.get("metadata", {}))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts. {FIX}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_says_what_you_will_learn_in_two_lines(path: Path):
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown"
    lines = [line for line in "".join(first["source"]).splitlines() if line.strip()]
    assert lines[0].startswith("# "), "a title first"
    assert len(lines) == 3 and lines[1].startswith("You will learn"), lines
