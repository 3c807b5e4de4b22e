"""Walking a LangGraph graph (builder or compiled, with subgraphs) by node path.

annotate() and wrap() both need "every node, addressed as `outer/inner`": annotate() to find the
node it is asked to annotate (and list the valid paths when it cannot), wrap() to collect the
annotations it will plan for. Subgraphs are found the way LangGraph itself finds them for
`get_subgraphs()`: a compiled graph added as a node, or one a node function closes over.

Functional-API graphs (`@entrypoint` calling `@task`s) compile to a Pregel with one node (the
entrypoint) and no builder; each task call runs as a task of that node, under the namespace
`entry|task`, so its path is `entry/task`. The tasks are found by reading which `@task` objects
the entrypoint's function refers to (its global names, closure and nested functions): LangGraph
keeps no list of them. A task's annotation is stored in the entrypoint node's metadata under
`murakkab_tasks` (task name -> its metadata), because tasks have no metadata of their own and
inherit the entrypoint's: that is how a call inside a task finds its annotation at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from murakkab_lg.integrations.langgraph.intercept import TASKS_KEY

__all__ = ("TASKS_KEY", "NodeRef", "functional_tasks", "is_builder", "is_compiled", "is_functional", "iter_nodes")

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


class _TaskMetadata:
    """The `metadata` of one `@task`, kept inside its entrypoint node's metadata (see above)."""

    def __init__(self, entry: Any, task: str) -> None:
        self.entry, self.task = entry, task

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(((self.entry.metadata or {}).get(TASKS_KEY) or {}).get(self.task) or {})

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        meta = dict(self.entry.metadata or {})
        meta[TASKS_KEY] = {**(meta.get(TASKS_KEY) or {}), self.task: dict(value)}
        self.entry.metadata = meta


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


def is_functional(graph: Any) -> bool:
    """A compiled graph built by `@entrypoint` (no StateGraph builder behind it)."""
    return is_compiled(graph) and getattr(graph, "builder", None) is None and any(
        _node_function(n) is not None for k, n in graph.nodes.items() if k not in _RESERVED)


def _node_function(pnode: Any) -> Any | None:
    bound = getattr(pnode, "bound", None)
    return getattr(bound, "func", None) or getattr(bound, "afunc", None)


def _is_task(obj: Any) -> bool:
    try:
        from langgraph.func import _TaskFunction
    except ImportError:  # the private class moved: recognise a task by its shape
        return hasattr(obj, "func") and hasattr(obj, "retry_policy") and callable(obj)
    return isinstance(obj, _TaskFunction)


def _referenced(fn: Any) -> Iterator[Any]:
    """Objects a function's code names: its globals, closure cells, and those of nested functions."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    glb = getattr(fn, "__globals__", {})
    cells = dict(zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False))
    todo, seen = [code], set()
    while todo:
        c = todo.pop(0)  # breadth first: the function's own names before its nested functions'
        if id(c) in seen:
            continue
        seen.add(id(c))
        for name in _loaded_names(c):
            if name in cells:
                try:
                    yield cells[name].cell_contents
                except ValueError:  # an empty cell
                    continue
            elif name in glb:
                yield glb[name]
        todo.extend(k for k in c.co_consts if hasattr(k, "co_names"))


def _loaded_names(code: Any) -> list[str]:
    """Global and closure names a code object loads, in the order its bytecode loads them."""
    import dis

    ops = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_FROM_DICT_OR_DEREF"}
    return list(dict.fromkeys(i.argval for i in dis.get_instructions(code)
                              if i.opname in ops and isinstance(i.argval, str)))


def functional_tasks(pnode: Any) -> list[str]:
    """Names of the `@task`s an entrypoint node's function calls, in the order its code names them."""
    out: list[str] = []
    for obj in _referenced(_node_function(pnode)):
        if _is_task(obj):
            name = getattr(obj.func, "__name__", None) or getattr(obj, "__name__", "task")
            if name not in out:
                out.append(name)
    return out


def iter_nodes(graph: Any, prefix: str = "") -> Iterator[NodeRef]:
    """Every node of `graph` and of its subgraphs, depth first, in insertion order."""
    if is_functional(graph):
        for name, pnode in graph.nodes.items():
            if name in _RESERVED:
                continue
            yield NodeRef(prefix + name, None, pnode)
            for task in functional_tasks(pnode):
                yield NodeRef(f"{prefix}{name}/{task}", None, _TaskMetadata(pnode, task))
    elif is_compiled(graph):
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
