"""How a route travels with an OpenAI chat request: model name, body field and headers.

The same three carriers are written for in-process calls (where the `Route` object is what the
runtime reads) and for server mode (where `murakkab serve` only sees HTTP), so a request captured
anywhere says which node sent it:

- `model`: `murakkab/<intent>` (or the pinned deployment's name),
- body field `murakkab`: `{"workflow", "node", "intent", "constraints"}`,
- headers `X-Murakkab-Node`, `X-Murakkab-Intent` (and `X-Murakkab-Workflow`; a client may pin a
  deployment with `X-Murakkab-Deployment`), percent-encoded so any node name is a valid value.

`decode_route` is the inverse, and the only one: the server and the litellm provider call it with
their own model naming and error wording as hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import ConfigError
from murakkab_lg.spec import Intent

__all__ = (
    "BODY_FIELD",
    "DEFAULT_MODELS",
    "DEPLOYMENT_HEADER",
    "INTENT_HEADER",
    "MODEL_PREFIX",
    "NODE_HEADER",
    "WORKFLOW_HEADER",
    "Route",
    "decode_route",
    "route_fields",
    "route_headers",
    "route_model",
    "route_of_model",
)


class Route(BaseModel):
    """Where a call comes from: the workflow node and its annotation, or an explicit deployment."""

    model_config = ConfigDict(frozen=True)

    workflow: str | None = None
    node: str | None = None
    intent: Intent | None = None
    deployment: str | None = None


_EMPTY = Route()  # a route that names nothing: the receiver's default deployment
BODY_FIELD = "murakkab"
MODEL_PREFIX = "murakkab/"
NODE_HEADER = "X-Murakkab-Node"
INTENT_HEADER = "X-Murakkab-Intent"
WORKFLOW_HEADER = "X-Murakkab-Workflow"
DEPLOYMENT_HEADER = "X-Murakkab-Deployment"
DEFAULT_MODELS = ("murakkab", "murakkab/default")
_SAFE = "/:._-@"
_NODE, _INTENT, _WORKFLOW, _DEPLOYMENT = (h.lower() for h in (NODE_HEADER, INTENT_HEADER, WORKFLOW_HEADER,
                                                             DEPLOYMENT_HEADER))


def route_model(route: Route) -> str:
    if route.deployment is not None:
        return route.deployment
    if route.intent is not None:
        return MODEL_PREFIX + route.intent.intent
    return MODEL_PREFIX + "default"


def route_fields(route: Route) -> dict[str, Any]:
    """The `murakkab` body field: enough for a server to rebuild the Route."""
    out: dict[str, Any] = {"workflow": route.workflow, "node": route.node}
    if route.intent is not None:
        out["intent"] = route.intent.intent
        out["constraints"] = route.intent.constraints.model_dump(exclude_none=True)
        out["expected_calls"] = route.intent.expected_calls
        out["expected_input_tokens"] = route.intent.expected_input_tokens
        out["expected_output_tokens"] = route.intent.expected_output_tokens
    if route.deployment is not None:
        out["deployment"] = route.deployment
    return out


def route_headers(route: Route) -> dict[str, str]:
    headers = {}
    if route.node is not None:
        headers[NODE_HEADER] = quote(route.node, safe=_SAFE)
    if route.intent is not None:
        headers[INTENT_HEADER] = quote(route.intent.intent, safe=_SAFE)
    if route.workflow is not None:
        headers[WORKFLOW_HEADER] = quote(route.workflow, safe=_SAFE)
    return headers


def route_of_model(model: str) -> Route | None:
    """What a model name alone says under the default naming: `murakkab/<intent>` routes by intent,
    `murakkab` and `murakkab/default` route to the default, anything else carries no route."""
    if model in DEFAULT_MODELS:
        return _EMPTY
    if model.startswith(MODEL_PREFIX):
        return Route(intent=Intent(model[len(MODEL_PREFIX):]))
    return None


def _make_intent(name: str, annotation: dict[str, Any] | None) -> Intent:
    return Intent(**annotation) if annotation else Intent(name)


def decode_route(
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    model_route: Callable[[str], Route | None] = route_of_model,
    make_intent: Callable[[str, dict[str, Any] | None], Intent] = _make_intent,
) -> Route | None:
    """The Route a request carries; None for a plain OpenAI request that carries none.

    Each of workflow, node, intent and deployment comes from the first source that sets it: the
    body field `murakkab` > the `X-Murakkab-*` headers > the model name. The model name is always
    read (`model_route` may refuse an unknown one), and contributes its intent if nothing above
    named one, or its deployment if nothing above named an intent, node or deployment. Constraints
    without any intent are an error (they would apply to nothing).

    The hooks let each receiver keep its own naming and errors over this one algorithm:
    `model_route(model)` (the server knows its deployments; litellm strips its provider prefix),
    and `make_intent(name, annotation)` (the server caches and words a 400). `headers` should be
    case-insensitive (Starlette's, httpx's) or a plain dict, which is lower-cased here.
    """
    if headers is None:
        headers = {}
    elif isinstance(headers, dict):
        headers = {k.lower(): v for k, v in headers.items()}
    model = body.get("model")
    by_model = model_route(model) if isinstance(model, str) else None
    raw = body.get(BODY_FIELD)
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"body field {BODY_FIELD!r} must be an object, got {type(raw).__name__}. "
                          "To fix: send {'node': ..., 'intent': ..., 'constraints': {...}}.")
    h_intent = _header(headers, _INTENT)
    if not raw and h_intent is None and _NODE not in headers and _DEPLOYMENT not in headers:
        return by_model
    fields = {k: v for k, v in (raw or {}).items() if v is not None}
    workflow = fields.pop("workflow", None) or _header(headers, _WORKFLOW)
    node = fields.pop("node", None) or _header(headers, _NODE)
    deployment = fields.pop("deployment", None) or _header(headers, _DEPLOYMENT)
    intent: Intent | None
    if fields:  # an annotation: an intent and/or constraints and expectations
        name = fields.get("intent") or h_intent or (by_model.intent.intent if by_model and by_model.intent else None)
        if name is None:
            keys = ", ".join(sorted(fields))
            raise ConfigError(f"invalid `{BODY_FIELD}` annotation: constraints ({keys}) need an intent to apply "
                              f"to. To fix: set {BODY_FIELD}.intent, the {INTENT_HEADER} header, or model "
                              f"'{MODEL_PREFIX}<intent>'.")
        intent = make_intent(name, {"intent": name, **fields})
    elif h_intent:
        intent = make_intent(h_intent, None)
    else:
        intent = by_model.intent if by_model else None
    if intent is None and node is None and deployment is None:
        if by_model is None:
            return None
        deployment = by_model.deployment
    return Route(workflow=workflow, node=node, intent=intent, deployment=deployment)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return unquote(value) if value else None
