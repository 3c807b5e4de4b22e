#!/usr/bin/env python3
"""Strip outputs from notebooks before committing: `python scripts/strip_notebooks.py [FILE.ipynb ...]`.

Notebooks are kept in git without outputs (CI executes them; outputs would only add noise and
stale numbers to diffs). With no arguments it strips every notebook under examples/. It uses only
the standard library, so it runs before anything is installed; tests/test_notebooks.py fails on a
committed output and names this script as the fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def strip(path: Path) -> bool:
    """Clear outputs, execution counts and execution timing; True if the file changed."""
    text = path.read_text()
    nb = json.loads(text)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "examples").rglob("*.ipynb"))
    for p in paths:
        if ".ipynb_checkpoints" not in p.parts and strip(p):
            print(f"stripped {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
