"""Call interception: every chat-model call inside an annotated node of a wrapped run goes to murakkab.

How, and why this way:

- **One process-wide patch**, installed once, of `BaseChatModel`'s entry points
  (`_generate_with_cache`, `_agenerate_with_cache`, `stream`, `astream` and the v3 event streams).
  Every chat model (ChatOpenAI, init_chat_model's models, any provider, any custom
  `BaseChatModel`) funnels through them, and so do `bind_tools`, `with_structured_output` and
  `batch`, which are bindings over `invoke`.
- **A contextvar** says whether the current code runs inside a wrapped run. Outside one, the patch
  costs one `ContextVar.get()` and calls the original: unwrapped graphs, in other threads or
  tasks, are untouched. LangGraph copies the context into its worker threads and tasks, so nodes
  of a wrapped run see it.
- **The node comes from the run metadata** LangGraph gives each task (`langgraph_checkpoint_ns`,
  node `metadata=`), which child runs inherit; no call-stack guessing.
- **A routed twin, not a rewrite.** An intercepted call runs the *original* LangChain code path on
  a shallow copy of the user's model whose class overrides only `_generate` / `_agenerate` /
  `_stream` / `_astream`. Callbacks, token streaming (`stream_mode="messages"`), tracing, rate
  limits and output parsers therefore behave exactly as before; only the transport changes.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import var_child_runnable_config
from pydantic import PrivateAttr

from murakkab_lg.errors import ConfigError
from murakkab_lg.integrations.langgraph._targets import Target
from murakkab_lg.integrations.messages import (
    StructuredOutput,
    chunk_from_data,
    message_from_response,
    openai_request,
)
from murakkab_lg.runtime.telemetry import CallRecord
from murakkab_lg.spec import Intent
from murakkab_lg.wire import BODY_FIELD, Route, route_fields, route_model

__all__ = ("ANNOTATION_KEY", "TASKS_KEY", "WORKFLOW_KEY", "Interceptor", "RunScope", "active_run", "install",
           "installed", "node_annotation", "node_path", "route_from_metadata")

# -- which node a call runs in: LangGraph copies each node's `metadata=` into the run config of the
# task, with `langgraph_node` and `checkpoint_ns`, and child runs (a chat model invoked in the
# node) inherit it, so the node is known from the metadata alone, without guessing from stacks.
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


# -- the patch ---------------------------------------------------------------------------------
_ACTIVE: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar("murakkab_run", default=None)
_LOCK = threading.RLock()
_ORIGINALS: dict[str, Callable[..., Any]] = {}
_ROUTED: dict[type, type] = {}  # user model class -> its routed twin
_ROUTED_TWINS: set[type] = set()


class _Call:
    """One resolved route and the target that serves it; turns LangChain calls into OpenAI bodies."""

    __slots__ = ("fields", "model", "route", "target")

    def __init__(self, target: Target, route: Route) -> None:
        self.target = target
        self.route = route
        self.model = route_model(route)
        self.fields = route_fields(route)

    def _body(self, model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
              kwargs: dict[str, Any]) -> tuple[dict[str, Any], StructuredOutput | None]:
        body, structured = openai_request(model, messages, stop, kwargs)
        body["model"] = self.model
        body[BODY_FIELD] = self.fields
        return body, structured

    def _result(self, resp: dict[str, Any], structured: StructuredOutput | None) -> ChatResult:
        message = message_from_response(resp, structured)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": resp.get("model"), "murakkab_node": self.route.node})

    def generate(self, model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> ChatResult:
        body, structured = self._body(model, messages, stop, kwargs)
        return self._result(self.target.complete(body, self.route), structured)

    async def agenerate(self, model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
                        kwargs: dict[str, Any]) -> ChatResult:
        body, structured = self._body(model, messages, stop, kwargs)
        return self._result(await self.target.acomplete(body, self.route), structured)

    def stream(self, model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
               run_manager: Any, kwargs: dict[str, Any]) -> Iterator[ChatGenerationChunk]:
        body, structured = self._body(model, messages, stop, kwargs)
        text: list[str] = []
        for data in self.target.stream(body, self.route):
            msg = chunk_from_data(data)
            if msg is None:
                continue
            gen = ChatGenerationChunk(message=msg)
            if msg.content:
                if structured is not None:
                    text.append(msg.content)  # type: ignore[arg-type]
                if run_manager is not None:
                    run_manager.on_llm_new_token(msg.content, chunk=gen)
            yield gen
        if structured is not None and (parsed := structured.parse("".join(text))) is not None:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", additional_kwargs={"parsed": parsed}))

    async def astream(self, model: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None,
                      run_manager: Any, kwargs: dict[str, Any]) -> AsyncIterator[ChatGenerationChunk]:
        body, structured = self._body(model, messages, stop, kwargs)
        text: list[str] = []
        async for data in self.target.astream(body, self.route):
            msg = chunk_from_data(data)
            if msg is None:
                continue
            gen = ChatGenerationChunk(message=msg)
            if msg.content:
                if structured is not None:
                    text.append(msg.content)  # type: ignore[arg-type]
                if run_manager is not None:
                    await run_manager.on_llm_new_token(msg.content, chunk=gen)
            yield gen
        if structured is not None and (parsed := structured.parse("".join(text))) is not None:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", additional_kwargs={"parsed": parsed}))

    def twin(self, model: BaseChatModel) -> BaseChatModel:
        """A shallow copy of `model` whose class sends its calls through this route."""
        cls = _routed_class(type(model))
        twin = cls.__new__(cls)
        object.__setattr__(twin, "__dict__", dict(model.__dict__))
        object.__setattr__(twin, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
        object.__setattr__(twin, "__pydantic_extra__", model.__pydantic_extra__)
        object.__setattr__(twin, "__pydantic_private__", {**(model.__pydantic_private__ or {}), "_murakkab_call": self})
        return twin


class Interceptor:
    """Per wrapped app: which calls to route (annotated nodes, or all with a default) and where."""

    def __init__(self, target: Target, workflow: str, default: Route | None = None) -> None:
        self.target = target
        self.workflow = workflow
        self.default = default
        self._calls: dict[str | None, tuple[object, _Call | None]] = {}

    def call_for(self, metadata: Mapping[str, Any]) -> _Call | None:
        """The route for a call with this run metadata; None means pass through untouched."""
        raw, path = node_annotation(metadata)
        hit = self._calls.get(path)
        if hit is not None and (hit[0] is raw or hit[0] == raw):  # LangGraph copies metadata per run
            return hit[1]
        call = self._resolve(raw, path)
        self._calls[path] = (raw, call)
        return call

    def _resolve(self, raw: object, path: str | None) -> _Call | None:
        if raw is None:
            if self.default is None:
                return None
            return _Call(self.target, self.default.model_copy(update={"workflow": self.workflow, "node": path}))
        try:
            intent = raw if isinstance(raw, Intent) else Intent.model_validate(raw)
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"node {path!r}: invalid murakkab annotation {raw!r}: {e}. To fix: use "
                              "metadata={'murakkab': {'intent': ..., 'min_quality': ...}} or annotate().") from None
        return _Call(self.target, Route(workflow=self.workflow, node=path, intent=intent))


class RunScope:
    """One wrapped run: its interceptor and the call records it produced (nested runs report upward)."""

    __slots__ = ("interceptor", "parent", "records")

    def __init__(self, interceptor: Interceptor, parent: RunScope | None = None) -> None:
        self.interceptor = interceptor
        self.parent = parent
        self.records: list[CallRecord] = []

    def enter(self) -> contextvars.Token[RunScope | None]:
        return _ACTIVE.set(self)

    @staticmethod
    def exit(token: contextvars.Token[RunScope | None]) -> None:
        _ACTIVE.reset(token)


def active_run() -> RunScope | None:
    return _ACTIVE.get()


def record_listener(rec: CallRecord) -> None:
    """Telemetry listener: attribute a call record to the wrapped run (and its parents) it ran in."""
    scope = _ACTIVE.get()
    while scope is not None:
        scope.records.append(rec)
        scope = scope.parent


# -- the routed twin class -----------------------------------------------------------------------
def _routed_class(cls: type) -> type:
    twin = _ROUTED.get(cls)
    if twin is not None:
        return twin
    with _LOCK:
        twin = _ROUTED.get(cls)
        if twin is None:
            twin = _make_twin(cls)
            _ROUTED[cls] = twin
            _ROUTED_TWINS.add(twin)
    return twin


def _make_twin(cls: type) -> type:
    def _generate(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self.__pydantic_private__["_murakkab_call"].generate(self, messages, stop, kwargs)

    async def _agenerate(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return await self.__pydantic_private__["_murakkab_call"].agenerate(self, messages, stop, kwargs)

    def _stream(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        return self.__pydantic_private__["_murakkab_call"].stream(self, messages, stop, run_manager, kwargs)

    def _astream(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                 run_manager: Any = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        return self.__pydantic_private__["_murakkab_call"].astream(self, messages, stop, run_manager, kwargs)

    def _get_invocation_params(self: Any, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        # Shown to callbacks and part of the LLM-cache key, so routed and direct calls never share
        # cache entries and traces say where the call went.
        params = cls._get_invocation_params(self, stop=stop, **kwargs)
        params[BODY_FIELD] = self.__pydantic_private__["_murakkab_call"].fields
        return params

    namespace = {
        "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
        "_murakkab_call": PrivateAttr(default=None),
        "_generate": _generate, "_agenerate": _agenerate, "_stream": _stream, "_astream": _astream,
        "_get_invocation_params": _get_invocation_params,
        # native v2 event hooks would bypass `_stream`; the compat bridge over `_stream` is used instead
        "_stream_chat_model_events": None, "_astream_chat_model_events": None,
    }
    return type(cls)(cls.__name__, (cls,), namespace)


# -- the process-wide patch ----------------------------------------------------------------------
def _current_metadata(config: Any) -> Mapping[str, Any]:
    meta = config.get("metadata") if isinstance(config, Mapping) else None
    if meta and ANNOTATION_KEY in meta:
        return meta
    parent = var_child_runnable_config.get()
    inherited = (parent or {}).get("metadata") or {}
    return {**inherited, **meta} if meta else inherited


def _patch_run_manager_entry(orig: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(orig):
        async def _agenerate_with_cache(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                                        run_manager: Any = None, **kwargs: Any) -> ChatResult:
            scope = _ACTIVE.get()
            if scope is not None and type(self) not in _ROUTED_TWINS:
                meta = run_manager.metadata if run_manager is not None else _current_metadata(None)
                call = scope.interceptor.call_for(meta)
                if call is not None:
                    self = call.twin(self)
            return await orig(self, messages, stop, run_manager, **kwargs)

        return _agenerate_with_cache

    def _generate_with_cache(self: Any, messages: list[BaseMessage], stop: list[str] | None = None,
                             run_manager: Any = None, **kwargs: Any) -> ChatResult:
        scope = _ACTIVE.get()
        if scope is not None and type(self) not in _ROUTED_TWINS:
            meta = run_manager.metadata if run_manager is not None else _current_metadata(None)
            call = scope.interceptor.call_for(meta)
            if call is not None:
                self = call.twin(self)
        return orig(self, messages, stop, run_manager, **kwargs)

    return _generate_with_cache


def _patch_config_entry(orig: Callable[..., Any]) -> Callable[..., Any]:
    """For `stream`/`astream`-like entry points `(self, input, config=None, *, stop=None, **kw)`."""
    if inspect.iscoroutinefunction(orig):
        async def aentry(self: Any, input: Any, config: Any = None, *, stop: list[str] | None = None,
                         **kwargs: Any) -> Any:
            scope = _ACTIVE.get()
            if scope is not None and type(self) not in _ROUTED_TWINS:
                call = scope.interceptor.call_for(_current_metadata(config))
                if call is not None:
                    self = call.twin(self)
            return await orig(self, input, config, stop=stop, **kwargs)

        aentry.__name__ = orig.__name__
        return aentry

    def entry(self: Any, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        scope = _ACTIVE.get()
        if scope is not None and type(self) not in _ROUTED_TWINS:
            call = scope.interceptor.call_for(_current_metadata(config))
            if call is not None:
                self = call.twin(self)
        return orig(self, input, config, stop=stop, **kwargs)

    entry.__name__ = orig.__name__
    return entry


_ENTRY_POINTS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "_generate_with_cache": _patch_run_manager_entry,
    "_agenerate_with_cache": _patch_run_manager_entry,
    "stream": _patch_config_entry,
    "astream": _patch_config_entry,
    "_chat_model_stream_v3": _patch_config_entry,
    "_achat_model_stream_v3": _patch_config_entry,
}


def install() -> None:
    """Patch `BaseChatModel` once per process (idempotent, thread-safe); inert outside wrapped runs."""
    if _ORIGINALS:
        return
    with _LOCK:
        if _ORIGINALS:
            return
        patched = {}
        for name, make in _ENTRY_POINTS.items():
            orig = BaseChatModel.__dict__.get(name)
            if orig is None:  # an entry point this langchain-core version does not have
                continue
            patched[name] = (orig, make(orig))
        for name, (orig, new) in patched.items():
            new.__wrapped__ = orig  # type: ignore[attr-defined]
            setattr(BaseChatModel, name, new)
            _ORIGINALS[name] = orig


def installed() -> bool:
    return bool(_ORIGINALS)
