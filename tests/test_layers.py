"""The house's layers: every import in `murakkab_lg` runs downward.

Layers, top to bottom (a package may import packages in strictly lower layers only; packages in
the same layer never import each other):

| layer | packages                         | why there                                               |
| ----- | -------------------------------- | ------------------------------------------------------- |
| 0     | cli                              | `murakkab` entry point: parses the command name only      |
| 1     | commands                         | one module per subcommand; calls the public library      |
| 2     | demo, figures, server, sim,      | programs built on the runtime: the demo app, plots of    |
|       | testing                          | plans and runs, the HTTP endpoint, the simulator (drives |
|       |                                  | policies and the runtime's pure decisions), the test     |
|       |                                  | engines users test their graphs with                     |
| 3     | integrations                     | how users reach the runtime: LangGraph, chat, litellm    |
| 4     | runtime, explain, profiling      | what drives policies and engines: the runtime; the one   |
|       |                                  | plan report; the profiler (runs engines on eval sets)    |
| 5     | policies, backends               | pure planners; engines and telemetry below the runtime   |
| 6     | catalog                          | models, hardware, shipped and measured profiles          |
| 7     | evals                            | eval sets and scorers (catalog's published rows use      |
|       |                                  | their confidence interval)                               |
| 8     | wire                             | Route and its encoding                                   |
| 9     | spec, profile_spec               | the vocabulary: workflow/plan types, profile row types   |
| 10    | checks                           | answer checks an annotation names (run-time cascades)    |
| 11    | errors                           | the one error tree                                       |

Two rules on top of the layers: `policies` import only `spec`, `profile_spec`, `errors`, the
standard library and their solver (numpy, scipy, pydantic), so a policy is a pure function that
imports, tests and benchmarks alone; `backends` never import integrations, server or runtime (the
layers already say so; the test names it because it is the arrow the old `adapters/` broke).

Imports are read from the source (ast), including imports inside functions and under
`TYPE_CHECKING` (a type-only import still ties one layer to another), plus registry entries
written as strings (`"murakkab_lg.x.y:Name"`), which are imports too. The package root
`murakkab_lg/__init__.py` is the public facade and re-exports from every layer; modules inside
the package must not import from it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import murakkab_lg

ROOT = Path(murakkab_lg.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("commands",),
    ("demo", "figures", "server", "sim", "testing"),
    ("integrations",),
    ("runtime", "explain", "profiling"),
    ("policies", "backends"),
    ("catalog",),
    ("evals",),
    ("wire",),
    ("spec", "profile_spec"),
    ("checks",),
    ("errors",),
)
LAYER_OF = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# (importer, imported): why this upward or sideways arrow is right. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {}

POLICY_THIRD_PARTY = {"numpy", "scipy", "pydantic"}
_REGISTRY_STRING = re.compile(r"^(murakkab_lg(?:\.\w+)+):\w+$")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(package: str, node: ast.ImportFrom) -> str:
    """The absolute module of `from ... import`, for an import written in `package`."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, registry strings included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node)
            if base == "murakkab_lg":  # `from murakkab_lg import explain` imports the module explain
                for a in node.names:
                    sub = (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").is_file()
                    out.append((node.lineno, f"murakkab_lg.{a.name}" if sub else base))
            else:
                out.append((node.lineno, base))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _REGISTRY_STRING.match(node.value)
            if m:
                out.append((node.lineno, m.group(1)))
    return out


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "murakkab_lg":
        return None
    return parts[1] if len(parts) > 1 else ""  # "": the facade


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p != ROOT / "__init__.py")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def test_every_package_has_a_layer() -> None:
    pkgs = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}
    missing = sorted(pkgs - set(LAYER_OF))
    assert not missing, f"place these in LAYERS (and the table in this docstring): {missing}"


def test_no_import_runs_upward_or_sideways() -> None:
    bad = []
    for path in _sources():
        src = _package(_module_name(path))
        assert src is not None
        for line, target in imports_of(path):
            dst = _package(target)
            if dst is None or dst == src:
                continue
            if dst == "":
                bad.append(f"{_rel(path)}:{line} imports the facade `murakkab_lg`; import {target}'s source")
                continue
            if (src, dst) in ALLOWED:
                continue
            if LAYER_OF[dst] <= LAYER_OF[src]:
                bad.append(f"{_rel(path)}:{line} ({src}, layer {LAYER_OF[src]}) imports {target} "
                           f"({dst}, layer {LAYER_OF[dst]})")
    assert not bad, "imports that run upward or sideways:\n" + "\n".join(bad)


def test_policies_import_only_spec_errors_and_their_solver() -> None:
    allowed_own = {"policies", "spec", "profile_spec", "errors"}
    bad = []
    for path in sorted((ROOT / "policies").rglob("*.py")):
        for line, target in imports_of(path):
            top = target.split(".")[0]
            pkg = _package(target)
            if pkg is not None:
                ok = pkg in allowed_own
            else:
                ok = top in sys.stdlib_module_names or top in POLICY_THIRD_PARTY or top == "__future__"
            if not ok:
                bad.append(f"{_rel(path)}:{line} imports {target}")
    assert not bad, "policies must import only spec, profile_spec, errors and their solver:\n" + "\n".join(bad)


def test_backends_never_import_what_sits_above_the_runtime() -> None:
    above = {"integrations", "server", "runtime", "commands", "cli", "demo", "testing", "sim"}
    bad = [f"{_rel(p)}:{line} imports {t}" for p in sorted((ROOT / "backends").rglob("*.py"))
           for line, t in imports_of(p) if _package(t) in above]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("from murakkab_lg.runtime import Runtime", "murakkab_lg.runtime"),
        ("def f():\n    import murakkab_lg.server.app", "murakkab_lg.server.app"),
        ("from . import base", "murakkab_lg.policies"),
        ("from ..spec import Plan", "murakkab_lg.spec"),
        ("R = {'x': 'murakkab_lg.backends.engines.vllm:create'}", "murakkab_lg.backends.engines.vllm"),
        ("from murakkab_lg import explain", "murakkab_lg.explain"),
    ],
)
def test_the_reader_sees_every_kind_of_import(code: str, expected: str) -> None:
    """The checks above are only as good as the import reader: pin what it recognises."""
    probe = ROOT / "policies" / "_probe.py"  # never written: only its place in the package matters
    assert expected in {t for _, t in imports_of(probe, code)}
