"""Walking a LangGraph graph (builder or compiled, with subgraphs) by node path.

annotate() and wrap() both need "every node, addressed as `outer/inner`": annotate() to find the
node it is asked to annotate (and list the valid paths when it cannot), wrap() to collect the
annotations it will plan for. Subgraphs are found the way LangGraph itself finds them for
`get_subgraphs()`: a compiled graph added as a node, or one a node function closes over.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ("NodeRef", "is_builder", "is_compiled", "iter_nodes")

_RESERVED = ("__start__", "__end__")


@dataclass
class NodeRef:
    """One node: its path and the objects whose `metadata` LangGraph reads for it."""

    path: str
    spec: Any | None  # StateNodeSpec in a builder (drawn by get_graph, used by future compiles)
    pregel_node: Any | None  # PregelNode in a compiled graph (copied into the task config)

    @property
    def metadata(self) -> dict[str, Any]:
        for holder in (self.pregel_node, self.spec):
            meta = getattr(holder, "metadata", None) if holder is not None else None
            if meta:
                return meta
        return {}

    def set_metadata(self, key: str, value: Any) -> None:
        for holder in (self.pregel_node, self.spec):
            if holder is not None:
                holder.metadata = {**(holder.metadata or {}), key: value}


def is_compiled(graph: Any) -> bool:
    from langgraph.pregel import Pregel

    return isinstance(graph, Pregel)


def is_builder(graph: Any) -> bool:
    from langgraph.graph import StateGraph

    return isinstance(graph, StateGraph)


def _subgraph_of(runnable: Any) -> Any | None:
    """The compiled subgraph a node runs (directly or from its function's closure), if any."""
    from langgraph.pregel import Pregel

    if isinstance(runnable, Pregel):
        return runnable
    try:
        from langchain_core.runnables import Runnable
        from langgraph._internal._runnable import RunnableCallable
        from langgraph.pregel._utils import find_subgraph_pregel
    except ImportError:  # private LangGraph helpers moved: subgraphs then only count when added as nodes
        return None
    if not isinstance(runnable, Runnable):
        if not callable(runnable):
            return None
        runnable = RunnableCallable(runnable, name=getattr(runnable, "__name__", "node"), trace=False)
    found = find_subgraph_pregel(runnable)
    return found if isinstance(found, Pregel) else None


def iter_nodes(graph: Any, prefix: str = "") -> Iterator[NodeRef]:
    """Every node of `graph` and of its subgraphs, depth first, in insertion order."""
    if is_compiled(graph):
        builder = getattr(graph, "builder", None)
        specs = getattr(builder, "nodes", {}) if builder is not None else {}
        subgraphs = dict(graph.get_subgraphs())
        for name, pnode in graph.nodes.items():
            if name in _RESERVED:
                continue
            yield NodeRef(prefix + name, specs.get(name), pnode)
            if name in subgraphs:
                yield from iter_nodes(subgraphs[name], f"{prefix}{name}/")
    elif is_builder(graph):
        for name, spec in graph.nodes.items():
            yield NodeRef(prefix + name, spec, None)
            sub = _subgraph_of(spec.runnable)
            if sub is not None:
                yield from iter_nodes(sub, f"{prefix}{name}/")
    else:
        raise TypeError(f"expected a StateGraph or a compiled LangGraph graph, got {type(graph).__name__}")
