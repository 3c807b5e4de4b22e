"""How a route travels with an OpenAI chat request: model name, body field and headers.

The same three carriers are written for in-process calls (where the `Route` object is what the
runtime reads) and for server mode (where `murakkab serve` only sees HTTP), so a request captured
anywhere says which node sent it:

- `model`: `murakkab/<intent>` (or the pinned deployment's name),
- body field `murakkab`: `{"workflow", "node", "intent", "constraints"}`,
- headers `X-Murakkab-Node`, `X-Murakkab-Intent` (and `X-Murakkab-Workflow`), percent-encoded so
  any node name is a valid header value.

`decode_route` is the inverse, for servers that receive such requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import RoutingError
from murakkab_lg.spec import Intent

__all__ = (
    "BODY_FIELD",
    "INTENT_HEADER",
    "MODEL_PREFIX",
    "NODE_HEADER",
    "WORKFLOW_HEADER",
    "Route",
    "decode_route",
    "route_fields",
    "route_headers",
    "route_model",
)


class Route(BaseModel):
    """Where a call comes from: the workflow node and its annotation, or an explicit deployment."""

    model_config = ConfigDict(frozen=True)

    workflow: str | None = None
    node: str | None = None
    intent: Intent | None = None
    deployment: str | None = None


BODY_FIELD = "murakkab"
MODEL_PREFIX = "murakkab/"
NODE_HEADER = "X-Murakkab-Node"
INTENT_HEADER = "X-Murakkab-Intent"
WORKFLOW_HEADER = "X-Murakkab-Workflow"
_SAFE = "/:._-@"


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


def decode_route(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Route | None:
    """The Route a request carries: body field first, then headers, then `model="murakkab/<intent>"`.

    Returns None for a request that carries no route (a plain OpenAI request).
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    fields = body.get(BODY_FIELD)
    if fields is not None and not isinstance(fields, Mapping):
        raise RoutingError(f"body field {BODY_FIELD!r} must be an object, got {type(fields).__name__}. "
                           "To fix: send {'node': ..., 'intent': ..., 'constraints': {...}}.")
    fields = dict(fields or {})
    intent_name = fields.get("intent") or _header(headers, INTENT_HEADER)
    model = body.get("model")
    if intent_name is None and isinstance(model, str) and model.startswith(MODEL_PREFIX):
        name = model[len(MODEL_PREFIX):]
        intent_name = None if name == "default" else name
    node = fields.get("node") or _header(headers, NODE_HEADER)
    workflow = fields.get("workflow") or _header(headers, WORKFLOW_HEADER)
    deployment = fields.get("deployment")
    if intent_name is None and node is None and deployment is None:
        return None
    intent = None
    if intent_name is not None:
        extra = {k: fields[k] for k in ("expected_calls", "expected_input_tokens", "expected_output_tokens")
                 if k in fields}
        intent = Intent(intent_name, constraints=fields.get("constraints") or {}, **extra)
    return Route(workflow=workflow, node=node, intent=intent, deployment=deployment)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    return unquote(value) if value else None
