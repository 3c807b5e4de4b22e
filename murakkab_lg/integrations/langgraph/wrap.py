"""wrap(): the user's compiled graph, unchanged, with its annotated nodes' LLM calls served by murakkab.

`wrap(graph, runtime=...)` returns a copy of the compiled graph whose class is a subclass of the
graph's own class, overriding only `stream` and `astream`. Every other entry point of a LangGraph
graph (invoke, ainvoke, batch, abatch, stream_events, use as a subgraph) runs through those two,
and everything else (get_graph, get_state, update_state, checkpointer and thread semantics,
`isinstance(app, CompiledStateGraph)`) is the graph's own. `with_config` returns a wrapped copy.

While a wrapped run executes, and only then, a contextvar marks it; the process-wide patch in
`intercept.py` sends chat-model calls made inside annotated nodes to the runtime (or to a
`murakkab serve` URL). Between chunks of a stream the mark is cleared, so code the caller runs
while consuming a stream is not intercepted.

On the first run the annotated nodes become a workflow, the runtime plans it once and starts the
planned deployments; later calls only look up the node's route (no re-planning per call).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from murakkab_lg.errors import ConfigError
from murakkab_lg.integrations.langgraph._graph import is_compiled
from murakkab_lg.integrations.langgraph._report import RunReport
from murakkab_lg.integrations.langgraph._targets import RuntimeTarget, Target, as_target
from murakkab_lg.integrations.langgraph._workflow import workflow_for
from murakkab_lg.integrations.langgraph.annotate import annotations_of
from murakkab_lg.integrations.langgraph.intercept import Interceptor, RunScope, active_run, install, record_listener
from murakkab_lg.runtime import Runtime
from murakkab_lg.spec import Intent, Plan, Workflow, known_intents
from murakkab_lg.wire import Route

__all__ = ("WrappedGraph", "wrap")


class _AppState:
    """What one wrap() shares across its copies (with_config) and runs."""

    def __init__(self, graph: Any, target: Target, name: str, default: Route | None) -> None:
        self.graph = graph
        self.target = target
        self.name = name
        self.interceptor = Interceptor(target, name, default)
        self.intents = annotations_of(graph)  # validates add_node(metadata=...) annotations up front
        self.workflow: Workflow | None = None
        self.plan: Plan | None = None
        self.last: RunReport | None = None
        self._ready = False
        self._lock = threading.Lock()

    def ensure_ready(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            self.workflow = workflow_for(self.graph, self.name, self.intents)
            self.plan = self.target.prepare(self.workflow)
            if record_listener not in self.target.telemetry.listeners:
                self.target.telemetry.listeners.append(record_listener)
            self._ready = True

    def finish(self, scope: RunScope, started: float, t0: float, error: BaseException | None) -> None:
        self.last = RunReport.build(self.name, started, time.perf_counter() - t0, scope.records, error,
                                    replans=self.target.replans_since(self.name, started))


class WrappedGraph:
    """Mixin placed before the graph's own class; see the module docstring."""

    _murakkab_state: _AppState
    _murakkab_base: type

    # -- the two entry points everything runs through -----------------------------------------
    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        state = self.__dict__["_murakkab_state"]
        state.ensure_ready()
        state.target.run_started(state.name)
        scope = RunScope(state.interceptor, active_run())
        started, t0, error = time.time(), time.perf_counter(), None
        token = scope.enter()
        try:
            inner = super().stream(*args, **kwargs)  # type: ignore[misc]
        finally:
            RunScope.exit(token)
        try:
            while True:
                token = scope.enter()
                try:
                    chunk = next(inner)
                except StopIteration:
                    return
                finally:
                    RunScope.exit(token)
                yield chunk
        except BaseException as e:
            error = e
            raise
        finally:
            inner.close()
            state.finish(scope, started, t0, error)

    async def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        state = self.__dict__["_murakkab_state"]
        state.ensure_ready()
        state.target.run_started(state.name)
        scope = RunScope(state.interceptor, active_run())
        started, t0, error = time.time(), time.perf_counter(), None
        token = scope.enter()
        try:
            inner = super().astream(*args, **kwargs)  # type: ignore[misc]
        finally:
            RunScope.exit(token)
        try:
            while True:
                token = scope.enter()
                try:
                    chunk = await inner.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    RunScope.exit(token)
                yield chunk
        except BaseException as e:
            error = e
            raise
        finally:
            await inner.aclose()
            state.finish(scope, started, t0, error)

    # -- the graph's own surface, kept wrapped --------------------------------------------------
    def copy(self, update: dict[str, Any] | None = None) -> Any:
        # Pregel.copy rebuilds the graph from its attributes; ours does the same without our state
        # attribute, then wraps the copy with the same state, so with_config() stays wrapped.
        attrs = {k: v for k, v in self.__dict__.items() if k not in ("__orig_class__", "_murakkab_state")}
        attrs.update(update or {})
        return _make(type(self)._murakkab_base(**attrs), self.__dict__["_murakkab_state"])

    # -- murakkab additions ----------------------------------------------------------------------
    @property
    def murakkab_plan(self) -> Plan | None:
        """The plan for this graph's annotated nodes (made on first use; None in server mode)."""
        state = self.__dict__["_murakkab_state"]
        state.ensure_ready()
        return state.plan

    @property
    def murakkab_workflow(self) -> Workflow:
        state = self.__dict__["_murakkab_state"]
        state.ensure_ready()
        assert state.workflow is not None
        return state.workflow

    def last_report(self) -> RunReport:
        """The report of the most recent finished run of this app (any thread)."""
        last = self.__dict__["_murakkab_state"].last
        if last is None:
            raise ConfigError("no run of this wrapped graph has finished yet. To fix: invoke or stream it first.")
        return last

    def unwrap(self) -> Any:
        """The compiled graph as given to wrap()."""
        return self.__dict__["_murakkab_state"].graph


_CLASSES: dict[type, type] = {}
_CLASSES_LOCK = threading.Lock()
_NAMES: weakref.WeakKeyDictionary[Runtime, set[str]] = weakref.WeakKeyDictionary()  # workflow names per runtime


def _wrapped_class(cls: type) -> type:
    with _CLASSES_LOCK:
        sub = _CLASSES.get(cls)
        if sub is None:
            sub = type(cls.__name__, (WrappedGraph, cls), {
                "__module__": __name__, "__qualname__": f"Wrapped{cls.__qualname__}", "_murakkab_base": cls})
            _CLASSES[cls] = sub
    return sub


def _make(graph: Any, state: _AppState) -> Any:
    app = object.__new__(_wrapped_class(type(graph)))
    app.__dict__.update(graph.__dict__)
    app.__dict__["_murakkab_state"] = state
    return app


def _default_route(default: Intent | str | None, target: Target) -> Route | None:
    if default is None or isinstance(default, Intent):
        return None if default is None else Route(intent=default)
    if isinstance(default, str):
        deployments = target.deployments()
        if default in deployments:
            return Route(deployment=default)
        if default in known_intents():
            return Route(intent=Intent(default))
        if isinstance(target, RuntimeTarget) or default.startswith("murakkab/"):
            raise ConfigError(f"default={default!r} is neither a deployment ({', '.join(deployments) or 'none'}) "
                              f"nor an intent ({', '.join(known_intents())}). To fix: pass one of these or an "
                              "Intent(...).")
        return Route(deployment=default)  # server mode: the server validates deployment names
    raise ConfigError(f"default must be an Intent, an intent or deployment name, or None; got {type(default).__name__}")


def wrap(graph: Any, runtime: Runtime | str | Target, *, default: Intent | str | None = None,
         name: str | None = None) -> Any:
    """The compiled `graph`, with LLM calls inside annotated nodes served by `runtime`.

    runtime: a `Runtime` (in-process), or the URL of `murakkab serve` (server mode).
    default: where calls outside annotated nodes go: None (untouched, the default), an `Intent`,
        an intent name, or a deployment name.
    name: the workflow name used for planning and reports (default: the graph's name, made
        unique per runtime).
    """
    if isinstance(graph, WrappedGraph):
        graph = graph.unwrap()
    if not is_compiled(graph):
        raise ConfigError(f"wrap() needs a compiled graph, got {type(graph).__name__}. To fix: "
                          "wrap(builder.compile(), runtime=...).")
    target = as_target(runtime)
    install()
    wf_name = name or getattr(graph, "name", None) or "LangGraph"
    if name is None and isinstance(target, RuntimeTarget):
        with _CLASSES_LOCK:
            taken = _NAMES.setdefault(target.runtime, set())
            base, n = wf_name, 2
            while wf_name in taken or wf_name in target.runtime.plans:
                wf_name, n = f"{base}#{n}", n + 1
            taken.add(wf_name)
    return _make(graph, _AppState(graph, target, wf_name, _default_route(default, target)))
