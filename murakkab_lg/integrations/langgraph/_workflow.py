"""The workflow wrap() plans: `extract.workflow_from_graph`, or an empty one when nothing is annotated.

A wrapped graph with no annotated node is legal (every call passes through, or goes to wrap()'s
`default`, which the runtime routes by intent or deployment without a workflow plan), so the
"nothing to plan" error of the extractor does not apply here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from murakkab_lg.integrations.langgraph.extract import workflow_from_graph
from murakkab_lg.spec import Intent, Workflow

__all__ = ("workflow_for",)


def workflow_for(graph: Any, name: str, intents: Mapping[str, Intent]) -> Workflow:
    if not intents:
        return Workflow(name=name, nodes=())
    return workflow_from_graph(graph, name=name)
