"""Pins the top-level public API: adding or removing a name is a deliberate, reviewed change."""

from __future__ import annotations

import murakkab_lg

EXPECTED = {
    "Constraints", "Intent", "MurakkabChat", "MurakkabError", "Objective", "Plan", "PlanInfeasibleError",
    "Route", "Runtime", "Workflow", "WorkflowNode", "annotate", "register_intent", "wrap",
}


def test_public_names_are_pinned_and_resolve() -> None:
    assert set(murakkab_lg.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(murakkab_lg, name) is not None


def test_cli_lists_every_command(capsys) -> None:
    from murakkab_lg.cli import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["no-such-command"]) == 2
