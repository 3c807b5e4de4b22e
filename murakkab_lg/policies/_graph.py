"""DAG helpers the planners share: topological order, longest paths, the critical path.

A workflow's end-to-end latency is its longest source->sink path (nodes on parallel branches run
at once), so every planner needs the same three things: an order to sweep in, the longest path
to each node, and the path that attains the maximum. They live here once, free of any solver.
"""

from __future__ import annotations

from collections.abc import Sequence

from murakkab_lg.errors import ConfigError
from murakkab_lg.spec import Workflow

__all__ = ("Dag", "dag_of")


class Dag:
    """Index form of a workflow's graph: node i's predecessors and successors, in topological order."""

    def __init__(self, names: Sequence[str], edges: Sequence[tuple[str, str]], label: str = "workflow") -> None:
        self.names = tuple(names)
        index = {n: i for i, n in enumerate(self.names)}
        self.preds: list[list[int]] = [[] for _ in self.names]
        self.succs: list[list[int]] = [[] for _ in self.names]
        for src, dst in dict.fromkeys(edges):  # drop duplicate edges, keep order
            u, v = index[src], index[dst]
            if u == v:
                raise ConfigError(
                    f"workflow {label!r}: node {src!r} has an edge to itself. To fix: express the loop as "
                    "`expected_iterations` on the node (extract() does this for LangGraph loops)."
                )
            self.preds[v].append(u)
            self.succs[u].append(v)
        self.order = self._topological(label)

    def _topological(self, label: str) -> list[int]:
        indeg = [len(p) for p in self.preds]
        ready = [i for i, d in enumerate(indeg) if d == 0]
        order: list[int] = []
        while ready:
            u = ready.pop()
            order.append(u)
            for v in self.succs[u]:
                indeg[v] -= 1
                if indeg[v] == 0:
                    ready.append(v)
        if len(order) != len(self.names):
            cyclic = sorted(self.names[i] for i, d in enumerate(indeg) if d > 0)
            raise ConfigError(
                f"workflow {label!r} has a cycle through {', '.join(cyclic)}; the planner needs a DAG. "
                "To fix: build the workflow with murakkab_lg.integrations.langgraph.extract (it folds loops "
                "into `expected_iterations`) or remove the back edge."
            )
        return order

    @property
    def sources(self) -> list[int]:
        return [i for i, p in enumerate(self.preds) if not p]

    @property
    def sinks(self) -> list[int]:
        return [i for i, s in enumerate(self.succs) if not s]

    def finish_times(self, latency: Sequence[float]) -> list[float]:
        """Longest path from any source to the end of each node (node latency included)."""
        fin = [0.0] * len(self.names)
        for v in self.order:
            fin[v] = latency[v] + max((fin[u] for u in self.preds[v]), default=0.0)
        return fin

    def tail_times(self, latency: Sequence[float]) -> list[float]:
        """Longest path from the start of each node to any sink (node latency included)."""
        tail = [0.0] * len(self.names)
        for v in reversed(self.order):
            tail[v] = latency[v] + max((tail[w] for w in self.succs[v]), default=0.0)
        return tail

    def makespan(self, latency: Sequence[float]) -> float:
        return max(self.finish_times(latency), default=0.0)

    def critical_path(self, latency: Sequence[float]) -> tuple[list[str], float]:
        """The slowest source->sink path under `latency` and its length."""
        if not self.names:
            return [], 0.0
        fin = self.finish_times(latency)
        v = max(range(len(fin)), key=lambda i: (fin[i], -i))
        total = fin[v]
        path = [v]
        while self.preds[v]:
            v = max(self.preds[v], key=lambda u: (fin[u], -u))
            path.append(v)
        return [self.names[i] for i in reversed(path)], total


def dag_of(workflow: Workflow) -> Dag:
    return Dag([n.name for n in workflow.nodes], list(workflow.edges), workflow.name)
