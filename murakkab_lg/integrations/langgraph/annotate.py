"""annotate(): attach intents and constraints to nodes of a graph you did not write.

The annotation lives where LangGraph already carries per-node data: the node's `metadata`, under
the key `murakkab`, exactly as if the author had written
`add_node("extract", fn, metadata={"murakkab": {"intent": "extract", "min_quality": 0.8}})`.
LangGraph copies it into each task's run config and child runs inherit it, which is how wrap()
later recognises calls made inside the node. It is stored as a plain dict so tracers and
checkpointers can serialise it.

For a compiled graph the annotation is set on the compiled nodes in place (and on its builder, so
`get_graph()` shows it). Annotate a StateGraph builder *before* `compile()`: graphs compiled
earlier keep the metadata they were compiled with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from murakkab_lg.errors import ConfigError, UnknownIntentError
from murakkab_lg.integrations.langgraph._graph import iter_nodes
from murakkab_lg.integrations.langgraph.intercept import ANNOTATION_KEY
from murakkab_lg.spec import Constraints, Intent, intent_metric, known_intents

__all__ = ("ANNOTATION_KEY", "annotate", "annotations_of", "to_intent")

G = TypeVar("G")

_INTENT_KEYS = tuple(k for k in Intent.model_fields if k != "constraints")
_CONSTRAINT_KEYS = tuple(Constraints.model_fields)


def _valid_keys() -> str:
    return f"intent fields: {', '.join(_INTENT_KEYS)}; constraints: {', '.join(_CONSTRAINT_KEYS)}"


def _check_consistent(intent: Intent, where: str) -> None:
    c = intent.constraints
    if c.latency_stat != "p50" and c.latency_slo_s is None:
        raise ConfigError(f"node {where!r}: latency_stat={c.latency_stat!r} but no latency_slo_s to apply it to. "
                          "To fix: add latency_slo_s=<seconds> or drop latency_stat.")


def to_intent(value: Any, where: str = "?") -> Intent:
    """An Intent from an Intent, an intent name, or a dict (flat or nested constraints); clear errors."""
    if isinstance(value, Intent):
        _check_consistent(value, where)
        return value
    if isinstance(value, str):
        value = {"intent": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"node {where!r}: annotation must be an Intent, an intent name or a dict, got "
                          f"{type(value).__name__}. To fix: annotate(graph, {{{where!r}: Intent('classify')}}).")
    nested = value.get("constraints")
    if isinstance(nested, Constraints):
        nested = nested.model_dump(exclude_unset=True)
    if isinstance(nested, Mapping):
        clashes = [k for k in _CONSTRAINT_KEYS if k in value and k in nested and value[k] != nested[k]]
        if clashes:
            k = clashes[0]
            raise ConfigError(f"node {where!r}: contradictory constraint {k}: {value[k]!r} given flat and "
                              f"{nested[k]!r} in 'constraints'. To fix: give it once.")
    unknown = sorted(set(value) - set(_INTENT_KEYS) - {"constraints"} - set(_CONSTRAINT_KEYS))
    if unknown:
        raise ConfigError(f"node {where!r}: unknown annotation key(s) {', '.join(unknown)}; valid {_valid_keys()}.")
    if "intent" not in value:
        raise ConfigError(f"node {where!r}: the annotation names no intent; known intents: "
                          f"{', '.join(known_intents())}. To fix: add 'intent': '<one of these>'.")
    try:
        intent_metric(value["intent"])
    except UnknownIntentError as e:
        raise UnknownIntentError(f"node {where!r}: {e}") from None
    try:
        intent = Intent.model_validate(dict(value))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'annotation'}: {err['msg']}"
                             for err in e.errors())
        raise ConfigError(f"node {where!r}: invalid annotation ({problems}). Valid {_valid_keys()}.") from None
    _check_consistent(intent, where)
    return intent


def _stored(intent: Intent) -> dict[str, Any]:
    return intent.model_dump(exclude_defaults=True, mode="json") | {"intent": intent.intent}


def annotate(graph: G, annotations: Mapping[str, Intent | Mapping[str, Any] | str]) -> G:
    """Set the `murakkab` annotation of each named node; returns `graph` (changed in place).

    Keys are node paths: `extract`, or `research/summarize` for node `summarize` of the subgraph
    that node `research` runs; for a functional-API graph, the entrypoint's name and its tasks'
    (`triage/classify`). A name that ends exactly one path stands for it (`classify`).
    Values are `Intent(...)`, an intent name, or the dict form.
    Raises ConfigError naming the valid paths, intents or keys when something does not match.
    """
    if not isinstance(annotations, Mapping) or not annotations:
        raise ConfigError("annotate() needs a non-empty {node_path: Intent(...)} mapping")
    try:
        refs = {ref.path: ref for ref in iter_nodes(graph)}
    except TypeError as e:
        raise ConfigError(f"annotate(): {e}. To fix: pass the StateGraph builder or its compiled graph.") from None
    paths = {key: _resolve_path(key, refs) for key in annotations}
    unknown = [k for k, p in paths.items() if p is None]
    if unknown:
        raise ConfigError(f"annotate(): no node {unknown[0]!r} in the graph; valid node paths: "
                          f"{', '.join(refs) or '(none)'}. Subgraph nodes are addressed as 'outer/inner' "
                          "(a functional-API task as 'entrypoint/task', or by its name alone).")
    # all valid before any change
    intents = {paths[key]: to_intent(value, paths[key]) for key, value in annotations.items()}
    for path, intent in intents.items():
        refs[path].set_metadata(ANNOTATION_KEY, _stored(intent))
    return graph


def _resolve_path(key: str, refs: Mapping[str, Any]) -> str | None:
    """`key` itself if it is a node path, else the one path whose last part is `key` (so a
    functional-API task is annotated by its name, `classify` for `triage/classify`)."""
    if key in refs:
        return key
    matches = [p for p in refs if p.rsplit("/", 1)[-1] == key]
    return matches[0] if len(matches) == 1 else None


def annotations_of(graph: Any) -> dict[str, Intent]:
    """node path -> Intent for every annotated node (either form), validated."""
    out = {}
    for ref in iter_nodes(graph):
        raw = ref.metadata.get(ANNOTATION_KEY)
        if raw is not None:
            out[ref.path] = to_intent(raw, ref.path)
    return out
