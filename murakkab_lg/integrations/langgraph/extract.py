"""From a LangGraph graph to the `Workflow` DAG the planner sees.

The structure is read from the graph's builder (the `StateGraph` a compiled graph keeps as
`.builder`), because `get_graph()` is a drawing: it omits edges it cannot draw (a `Send` router
without a path map, nodes it finds unreachable). From the builder:

* plain edges, and edges that wait for several sources;
* conditional edges contribute **every** target they may take (`path_map`, or the router's
  `Literal[...]` return type; with neither, every other node of that graph, since any may be next), so
  the planner's critical path is the worst feasible one;
* `Command(goto=...)` destinations a node declares (`Command[Literal[...]]`);
* subgraphs are flattened: node `inner` of the subgraph run by node `outer` becomes `outer/inner`,
  edges into `outer` go to the subgraph's entry nodes and edges out leave from its exit nodes;
* loops (strongly connected parts) are cut at their back edges, and every annotated node on a loop
  gets `expected_iterations` = the largest value annotated on any node of that loop (a loop
  with no such annotation is planned as one pass, with a warning);
* a `Send` fan-out's width is the target's `expected_fanout` annotation;
* nodes without an annotation are not LLM calls to plan: they are contracted away (their
  predecessors connect to their successors), unless `default` gives them an intent;
* functional-API graphs (`@entrypoint` with `@task`s) have no builder: each task is a node
  (`entry/task`), and since which task runs after which is only known when the code runs, the
  entrypoint and its tasks are planned as one chain in the order the code names them (an upper
  bound on latency), with a `StructureWarning` when there is more than one task.

Expected calls and tokens per node come from the annotation (`expected_calls`,
`expected_input_tokens`, `expected_output_tokens`); `with_observed()` replaces them with
telemetry when the runtime has seen the node run.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from murakkab_lg.errors import ConfigError
from murakkab_lg.integrations.langgraph._graph import (
    _subgraph_of,
    functional_tasks,
    is_builder,
    is_compiled,
    is_functional,
)
from murakkab_lg.integrations.langgraph.annotate import annotations_of
from murakkab_lg.spec import Intent, Objective, Workflow, WorkflowNode

__all__ = ("LoopWarning", "StructureWarning", "extract", "with_observed", "workflow_from_graph")

_START, _END = "__start__", "__end__"


class LoopWarning(UserWarning):
    """A loop in the graph has no `expected_iterations` annotation."""


class StructureWarning(UserWarning):
    """Part of the graph's structure is unknown before it runs (functional API); planned as a chain."""


@dataclass
class _Flat:
    """The flattened graph: leaf node paths, edges between them, and entry / exit leaves."""

    leaves: list[str] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)


def _builder(graph: Any) -> Any:
    if is_builder(graph):
        return graph
    builder = getattr(graph, "builder", None)
    if builder is None or not is_builder(builder):
        raise ConfigError(
            f"cannot read the structure of a {type(graph).__name__}: it has no StateGraph builder. "
            "To fix: pass the StateGraph (or the graph its compile() returned), or write the workflow "
            "as a YAML/JSON file (see docs/planner.md)."
        )
    return builder


def _subgraphs(graph: Any, builder: Any) -> dict[str, Any]:
    if is_compiled(graph):
        return dict(graph.get_subgraphs())
    out = {}
    for name, spec in builder.nodes.items():
        sub = _subgraph_of(spec.runnable)
        if sub is not None:
            out[name] = sub
    return out


def _raw_edges(builder: Any) -> list[tuple[str, str]]:
    names = list(builder.nodes)
    out = list(sorted(builder.edges))
    for sources, dst in sorted(builder.waiting_edges):
        out += [(s, dst) for s in sources]
    for src, branches in builder.branches.items():
        for branch in branches.values():
            ends = branch.ends
            # unknown router (no path map, no Literal hint): any other node may follow
            targets = list(ends.values()) if ends else [*(n for n in names if n != src), _END]
            out += [(src, t) for t in targets]
    for name, spec in builder.nodes.items():
        out += [(name, t) for t in (spec.ends or ())]
    return out


def _flatten_functional(graph: Any, prefix: str) -> _Flat:
    """An `@entrypoint` graph: the entrypoint, then its tasks, as a chain (see the module docstring)."""
    flat = _Flat()
    for name, pnode in graph.nodes.items():
        if name in (_START, _END):
            continue
        chain = [prefix + name, *(f"{prefix}{name}/{t}" for t in functional_tasks(pnode))]
        flat.leaves += chain
        flat.edges += list(itertools.pairwise(chain))
        flat.entries.append(chain[0])
        flat.exits.append(chain[-1])
        if len(chain) > 2:
            warnings.warn(
                f"functional-API graph {prefix + name!r}: the order of its tasks ({', '.join(chain[1:])}) is not "
                "known before it runs, so it is planned as a chain in the order the code names them (an upper "
                "bound on latency if some run in parallel). To fix: write it as a StateGraph, or plan it "
                "from a YAML/JSON workflow file with its real edges.", StructureWarning, stacklevel=3)
    return flat


def _flatten(graph: Any, prefix: str = "") -> _Flat:
    if is_functional(graph):
        return _flatten_functional(graph, prefix)
    builder = _builder(graph)
    subs = _subgraphs(graph, builder)
    flat = _Flat()
    ins: dict[str, list[str]] = {}
    outs: dict[str, list[str]] = {}
    for name in builder.nodes:
        if name in subs:
            inner = _flatten(subs[name], f"{prefix}{name}/")
            flat.leaves += inner.leaves
            flat.edges += inner.edges
            ins[name], outs[name] = inner.entries, inner.exits
        else:
            flat.leaves.append(prefix + name)
            ins[name] = outs[name] = [prefix + name]
    for src, dst in _raw_edges(builder):
        if src == _START:
            flat.entries += ins.get(dst, [])
        elif dst == _END:
            flat.exits += outs.get(src, [])
        elif src in outs and dst in ins:
            flat.edges += [(a, b) for a in outs[src] for b in ins[dst]]
    flat.entries = list(dict.fromkeys(flat.entries))
    flat.exits = list(dict.fromkeys(flat.exits))
    return flat


def _sccs(nodes: list[str], succ: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (graphs may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ.get(w, ()))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(comp)
    return out


def _forward_edges(order: list[str], succ: Mapping[str, list[str]]) -> tuple[list[str], set[tuple[str, str]]]:
    """DFS from the entries: visit order and the edges that are not back edges (so a DAG remains)."""
    state: dict[str, int] = {}
    keep: set[tuple[str, str]] = set()
    visited: list[str] = []
    for root in order:
        if root in state:
            continue
        state[root] = 1
        visited.append(root)
        work = [(root, iter(succ.get(root, ())))]
        while work:
            v, it = work[-1]
            for w in it:
                if state.get(w) == 1:
                    continue  # back edge: closes a loop
                keep.add((v, w))
                if w not in state:
                    state[w] = 1
                    visited.append(w)
                    work.append((w, iter(succ.get(w, ()))))
                    break
            else:
                state[v] = 2
                work.pop()
    return visited, keep


def workflow_from_graph(graph: Any, *, name: str | None = None, default: Intent | None = None,
                        latency_slo_s: float | None = None, objective: Objective | None = None,
                        arrival_rate_per_s: float | None = None) -> Workflow:
    """The planner's view of `graph` (a StateGraph or a compiled graph); see the module docstring."""
    flat = _flatten(graph)
    intents = dict(annotations_of(graph))
    if default is not None:
        intents = {leaf: intents.get(leaf, default) for leaf in flat.leaves}
    if not intents:
        raise ConfigError(
            "the graph has no annotated node, so there is nothing to plan. To fix: add "
            "metadata={'murakkab': {'intent': ...}} to the LLM nodes, call annotate(graph, {...}), "
            "or pass default=Intent(...)."
        )
    succ: dict[str, list[str]] = {leaf: [] for leaf in flat.leaves}
    for a, b in dict.fromkeys(flat.edges):
        succ[a].append(b)
    # loops: every annotated node of a strongly connected part runs as often as the loop does
    for comp in _sccs(flat.leaves, succ):
        if len(comp) == 1 and comp[0] not in succ[comp[0]]:
            continue
        annotated = [n for n in comp if n in intents]
        stated = [intents[n].expected_iterations for n in annotated
                  if "expected_iterations" in intents[n].model_fields_set]
        if annotated and not stated:
            warnings.warn(
                f"loop through {', '.join(sorted(comp))} has no expected_iterations annotation; it is "
                "planned as one pass. To fix: annotate one of its nodes with expected_iterations=<n>.",
                LoopWarning, stacklevel=2)
        iters = max(stated, default=1.0)
        for n in annotated:
            if intents[n].expected_iterations < iters:
                intents[n] = intents[n].model_copy(update={"expected_iterations": iters})
    order, keep = _forward_edges(flat.entries + flat.leaves, succ)
    # contract unannotated nodes: annotated -> (unannotated)* -> annotated becomes one edge
    edges: list[tuple[str, str]] = []
    dag_succ: dict[str, list[str]] = {}
    for a, b in sorted(keep):
        dag_succ.setdefault(a, []).append(b)
    for src in order:
        if src not in intents:
            continue
        seen: set[str] = set()
        todo = list(dag_succ.get(src, ()))
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in intents:
                edges.append((src, n))
            else:
                todo.extend(dag_succ.get(n, ()))
    nodes = tuple(WorkflowNode(name=n, intent=intents[n]) for n in order if n in intents)
    return Workflow(name=name or getattr(graph, "name", None) or "workflow", nodes=nodes,
                    edges=tuple(dict.fromkeys(edges)), latency_slo_s=latency_slo_s, objective=objective,
                    arrival_rate_per_s=arrival_rate_per_s)


extract = workflow_from_graph


def with_observed(workflow: Workflow, observed: Mapping[str, Mapping[str, float]]) -> Workflow:
    """`workflow` with expected calls and tokens replaced by what telemetry observed per node.

    `observed` maps node name -> {"calls": per run, "input_tokens": per call, "output_tokens": per
    call}; missing keys keep the annotation's value.
    """
    nodes = []
    for n in workflow.nodes:
        o = observed.get(n.name)
        if not o:
            nodes.append(n)
            continue
        upd: dict[str, Any] = {}
        if o.get("calls"):
            upd["expected_calls"] = float(o["calls"])
        if o.get("input_tokens") is not None:
            upd["expected_input_tokens"] = round(o["input_tokens"])
        if o.get("output_tokens"):
            upd["expected_output_tokens"] = max(1, round(o["output_tokens"]))
        nodes.append(n.model_copy(update={"intent": n.intent.model_copy(update=upd)}))
    return workflow.model_copy(update={"nodes": tuple(nodes)})
