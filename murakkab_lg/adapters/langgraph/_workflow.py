"""A minimal graph -> Workflow for wrap(), used until/unless `extract.workflow_from_graph` exists.

Nodes are the annotated node paths; edges connect annotated nodes that follow one another in
`get_graph(xray=True)`, looking through unannotated nodes in between. Edges that would close a
cycle (an agent loop) are dropped, since planners expect a DAG; the loop's repetition belongs in
the annotation (`expected_calls`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from murakkab_lg.spec import Intent, Workflow, WorkflowNode

__all__ = ("workflow_for",)


def _edges(graph: Any, order: list[str]) -> list[tuple[str, str]]:
    annotated = set(order)
    try:
        drawn = graph.get_graph(xray=True)
    except Exception:  # drawing is best effort; a workflow without edges still plans per node
        return []
    succ: dict[str, list[str]] = {}
    for e in drawn.edges:
        succ.setdefault(e.source.replace(":", "/"), []).append(e.target.replace(":", "/"))
    edges: list[tuple[str, str]] = []
    for src in annotated:
        seen, todo = set(), list(succ.get(src, []))
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in annotated:
                if n != src:
                    edges.append((src, n))
            else:
                todo.extend(succ.get(n, []))
    return _acyclic(sorted(set(edges)), order)


def _acyclic(edges: list[tuple[str, str]], nodes: list[str]) -> list[tuple[str, str]]:
    """Drop back edges found by a depth-first search, so the result is a DAG."""
    adj: dict[str, list[str]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()

    def visit(n: str) -> None:
        state[n] = 1
        for m in adj.get(n, []):
            if state.get(m) == 1:
                back.add((n, m))
            elif m not in state:
                visit(m)
        state[n] = 2

    for n in nodes:
        if n not in state:
            visit(n)
    return [e for e in edges if e not in back]


def workflow_for(graph: Any, name: str, intents: Mapping[str, Intent]) -> Workflow:
    """The workflow wrap() plans: `extract.workflow_from_graph` when available, else this minimal one."""
    try:
        from murakkab_lg.adapters.langgraph.extract import workflow_from_graph  # type: ignore[attr-defined]
    except ImportError:
        workflow_from_graph = None
    if workflow_from_graph is not None:
        return workflow_from_graph(graph, name=name)
    ordered = list(intents)
    nodes = tuple(WorkflowNode(name=p, intent=intents[p]) for p in ordered)
    return Workflow(name=name, nodes=nodes, edges=tuple(_edges(graph, ordered)))
