"""Every failure as an OpenAI error envelope, with the status code an OpenAI client expects.

Why one mapping: clients (the openai SDK, litellm, LangChain) turn the status code into an exception
class (404 -> NotFoundError, 429 -> RateLimitError with retry, 503 -> retried) and show the
envelope's message, so each `murakkab_lg.errors` class maps to exactly one status here and the
message keeps the library's "cause and fix" text. Nothing here ever puts a traceback in a body.

    RoutingError, UnknownIntentError      404 model_not_found (lists the valid names)
    RequestLimitError (max_tokens, n caps)  400 request_limit (`param` names the field)
    OverloadedError (runtime admission)    429 server_overloaded with Retry-After
    ConfigError raised for the request     400 invalid_request_error
    EngineRequestError (engine said 4xx)   the engine's status and message
    PlanInfeasibleError                    503 no deployment meets the constraints
    EngineError / ConfigError at runtime   503 engine_unavailable / server_misconfigured
    anything else                          500 internal_error (logged with its traceback)
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from openai.types.shared import ErrorObject
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from murakkab_lg.errors import (
    ConfigError,
    EngineError,
    EngineRequestError,
    MurakkabError,
    OverloadedError,
    PlanInfeasibleError,
    RequestLimitError,
    RoutingError,
    UnknownIntentError,
)

__all__ = ("ApiError", "ErrorEnvelope", "api_error_from", "error_response", "validation_message")

log = logging.getLogger("murakkab_lg.server")


class ErrorEnvelope(BaseModel):
    """`{"error": {...}}`, the body of every non-2xx answer (for the OpenAPI schema)."""

    error: ErrorObject


class ApiError(Exception):
    """A failure already decided: status, OpenAI error type and code, and extra headers."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}})


def error_response(err: ApiError) -> Response:
    return Response(err.body(), status_code=err.status, headers=err.headers, media_type="application/json")


def validation_message(e: ValidationError) -> tuple[str, str | None]:
    """A one-line message naming each invalid field, and the first field's dotted path."""
    parts, first = [], None
    for item in e.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in item["loc"])
        first = first or loc or None
        parts.append(f"{loc or 'body'}: {item['msg']}")
    more = len(e.errors()) - len(parts)
    tail = f" (and {more} more)" if more > 0 else ""
    return "invalid request: " + "; ".join(parts) + tail, first


def _engine_request_error(e: EngineRequestError) -> ApiError:
    code = None
    if isinstance(e.body, dict) and isinstance(e.body.get("error"), dict):
        raw = e.body["error"].get("code")
        code = str(raw) if raw is not None else None
    status = e.status_code if 400 <= e.status_code < 500 else 502
    return ApiError(status, str(e), type="invalid_request_error", code=code)


def api_error_from(exc: BaseException, *, valid_models: Any = ()) -> ApiError:
    """Map any exception to the ApiError a client should see; unexpected ones are logged."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RoutingError | UnknownIntentError):
        names = ", ".join(valid_models)
        return ApiError(404, f"{exc} Valid models: {names}." if names else str(exc),
                        type="invalid_request_error", code="model_not_found", param="model")
    if isinstance(exc, RequestLimitError):
        return ApiError(400, str(exc), code="request_limit", param=exc.param)
    if isinstance(exc, OverloadedError):
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        return ApiError(429, str(exc), type="rate_limit_error", code="server_overloaded",
                        headers={"Retry-After": retry})
    if isinstance(exc, EngineRequestError):
        return _engine_request_error(exc)
    if isinstance(exc, PlanInfeasibleError):
        return ApiError(503, f"no deployment can serve this request: {exc}", type="service_unavailable",
                        code="plan_infeasible")
    if isinstance(exc, EngineError):
        return ApiError(503, f"no deployment can serve this request right now: {exc}", type="service_unavailable",
                        code="engine_unavailable", headers={"Retry-After": "1"})
    if isinstance(exc, ConfigError | MurakkabError):
        return ApiError(503, f"the server cannot route this request: {exc}", type="service_unavailable",
                        code="server_misconfigured")
    ref = uuid.uuid4().hex[:12]
    log.error("unexpected error (ref %s)", ref, exc_info=exc)
    return ApiError(500, f"internal error (ref {ref}); the server log has the details", type="server_error",
                    code="internal_error")
