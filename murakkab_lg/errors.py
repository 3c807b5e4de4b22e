"""One exception tree for murakkab-lg.

Every message names the cause and the fix, so a user reading a log line knows what to change
without opening the source.

    MurakkabError
    ├── ConfigError              bad annotation, unknown intent, malformed config file
    │   ├── UnknownIntentError
    │   └── RequestLimitError    a request asks for more than the runtime's caps (max_tokens, n)
    ├── PlanInfeasibleError      no assignment meets a node's constraint or the workflow SLO
    ├── ModelError               a model file is missing, partial or corrupt
    ├── EngineError              an engine binary is missing, will not start or died
    │   ├── EngineNotFoundError
    │   ├── EngineStartError
    │   ├── EngineUnavailableError   no healthy replica can serve a request right now
    │   │   └── OverloadedError      every deployment that may serve it is at its admission limit
    │   └── EngineRequestError       the engine refused this request (4xx: bad input, too long)
    ├── RoutingError             a call names a node, intent or deployment the runtime does not know
    └── TelemetryUnavailableError  GPU telemetry (NVML) cannot be read: no package, driver or GPU
"""

from __future__ import annotations

__all__ = (
    "ConfigError",
    "EngineError",
    "EngineNotFoundError",
    "EngineRequestError",
    "EngineStartError",
    "EngineUnavailableError",
    "ModelError",
    "MurakkabError",
    "OverloadedError",
    "PlanInfeasibleError",
    "RequestLimitError",
    "RoutingError",
    "TelemetryUnavailableError",
    "UnknownIntentError",
)


class MurakkabError(Exception):
    """Base of every error this library raises on purpose."""


class ConfigError(MurakkabError, ValueError):
    """An annotation, constraint or configuration file is invalid."""


class UnknownIntentError(ConfigError):
    """An intent name is not registered."""


class RequestLimitError(ConfigError):
    """A request asks for more than the configured caps allow; `param` names the field."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class PlanInfeasibleError(MurakkabError):
    """No assignment satisfies the stated constraints.

    `node` and `constraint` name what failed; `best` is the best achievable value, so callers can
    relax the constraint to exactly what the fleet can deliver.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        constraint: str | None = None,
        best: float | None = None,
    ) -> None:
        super().__init__(message)
        self.node = node
        self.constraint = constraint
        self.best = best


class ModelError(MurakkabError):
    """A model artifact is missing, partial or fails its pinned hash."""


class EngineError(MurakkabError):
    """An engine could not be started or stopped working."""


class EngineNotFoundError(EngineError):
    """The engine's binary or Python package is not installed."""


class EngineStartError(EngineError):
    """The engine process exited early or never became ready."""


class EngineUnavailableError(EngineError):
    """No healthy replica can take the request (all dead, draining, or at capacity).

    `status_code` is the engine's 5xx status when it answered (503: overloaded, try later), None
    when it could not be reached at all, so a retry layer can tell the two apart.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class OverloadedError(EngineUnavailableError):
    """Every deployment that may serve the call has its in-flight limit reached and its wait
    queue full (or the bounded wait ran out); `retry_after_s` says when to try again."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message, status_code=429)
        self.retry_after_s = retry_after_s


class EngineRequestError(EngineError):
    """The engine answered 4xx: the request itself is at fault, so retrying elsewhere won't help
    (except 429, rate limited: `status_code` says which)."""

    def __init__(self, message: str, *, status_code: int, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class RoutingError(MurakkabError):
    """A request names a node, intent or deployment that the runtime cannot resolve."""


class TelemetryUnavailableError(MurakkabError):
    """GPU telemetry cannot be read (package, driver or GPU missing); callers fall back to estimates."""
