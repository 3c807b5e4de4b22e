"""Reading the calling LangGraph node and its annotation from LangChain's run metadata.

LangGraph copies each node's `metadata=` into the run config of the task, with `langgraph_node`
and `checkpoint_ns`; child runs (a chat model invoked in the node) inherit that metadata. So the
node is known from the metadata alone, without guessing from call stacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from murakkab_lg.spec import Intent
from murakkab_lg.wire import Route

__all__ = ("ANNOTATION_KEY", "TASKS_KEY", "WORKFLOW_KEY", "node_annotation", "node_path", "route_from_metadata")

ANNOTATION_KEY = "murakkab"
WORKFLOW_KEY = "murakkab_workflow"
TASKS_KEY = "murakkab_tasks"  # on a functional-API entrypoint: task name -> its metadata


def node_path(metadata: Mapping[str, Any]) -> str | None:
    """`outer/inner` for a node inside a subgraph, from LangGraph's task namespace.

    `langgraph_checkpoint_ns` is the task's own namespace (`research:<id>|summarize:<id>`); the
    plain `checkpoint_ns` key in child-run metadata can be the *parent's*, so it is a fallback.
    """
    ns = metadata.get("langgraph_checkpoint_ns") or metadata.get("checkpoint_ns")
    if isinstance(ns, str) and ns:
        return "/".join(p.split(":", 1)[0] for p in ns.split("|") if p)
    node = metadata.get("langgraph_node")
    return node if isinstance(node, str) else None


def node_annotation(metadata: Mapping[str, Any]) -> tuple[Any, str | None]:
    """(raw annotation, node path) of the node a call runs in.

    A functional-API `@task` has no metadata of its own and inherits its entrypoint's, where
    annotate() keeps the tasks' annotations under `murakkab_tasks`: a task with one is its own
    node (`entry/task`); the calls of a task without one belong to its entrypoint.
    """
    path = node_path(metadata)
    tasks = metadata.get(TASKS_KEY)
    pushed = "__pregel_push" in (metadata.get("langgraph_triggers") or ())
    if isinstance(tasks, Mapping) and pushed and path and "/" in path:
        entry, _, task = path.rpartition("/")
        own = (tasks.get(task) or {}).get(ANNOTATION_KEY)
        return (own, path) if own is not None else (metadata.get(ANNOTATION_KEY), entry)
    return metadata.get(ANNOTATION_KEY), path


def route_from_metadata(metadata: Mapping[str, Any], workflow: str | None = None) -> Route | None:
    """The Route for a call made inside an annotated node, or None outside one."""
    raw, path = node_annotation(metadata)
    if raw is None:
        return None
    intent = raw if isinstance(raw, Intent) else Intent.model_validate(raw)
    return Route(workflow=metadata.get(WORKFLOW_KEY, workflow), node=path, intent=intent)
