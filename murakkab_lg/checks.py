"""Answer checks for run-time cascades: does a stage's answer pass, or does the call escalate?

An annotation names its check as `check=`:

- a callable `fn(text) -> bool` (any exception counts as a failure),
- a JSON schema (a dict): the answer must parse as JSON and validate (needs the `jsonschema`
  package, imported only when such a check runs),
- a built-in name: `json_valid` (parses as JSON), `json_object` (a JSON object), `nonempty`,
- any other string: a regular expression the answer must contain (anchor it with `^...$` to
  match the whole answer).

A `Check` is hashable and compares by what it checks, so an `Intent` carrying one stays a valid
dict key. It is not serialisable (a callable cannot be): `Intent` excludes it from JSON and the
wire, so in server mode the check must be configured where the runtime runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from murakkab_lg.errors import ConfigError

__all__ = ("BUILTIN_CHECKS", "Check", "as_check", "confidence")


def _json(text: str) -> Any:
    return json.loads(text.strip().removeprefix("```json").removeprefix("```").removesuffix("```"))


def _json_valid(text: str) -> bool:
    try:
        _json(text)
    except ValueError:
        return False
    return True


def _json_object(text: str) -> bool:
    try:
        return isinstance(_json(text), dict)
    except ValueError:
        return False


BUILTIN_CHECKS: dict[str, Callable[[str], bool]] = {
    "json_valid": _json_valid,
    "json_object": _json_object,
    "nonempty": lambda text: bool(text.strip()),
}


class Check:
    """One check; call it with the answer's text."""

    __slots__ = ("_fn", "_key", "kind", "label")

    def __init__(self, kind: str, label: str, fn: Callable[[str], bool], key: object) -> None:
        self.kind, self.label, self._fn, self._key = kind, label, fn, key

    def __call__(self, text: str) -> bool:
        try:
            return bool(self._fn(text))
        except Exception:  # a check that cannot judge the answer does not accept it
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Check) and (self.kind, self._key) == (other.kind, other._key)

    def __hash__(self) -> int:
        return hash((self.kind, self._key))

    def __repr__(self) -> str:
        return f"Check({self.kind}: {self.label})"


def _schema_check(schema: dict[str, Any]) -> Check:
    try:
        import jsonschema
    except ImportError:
        raise ConfigError("a JSON-schema check needs the `jsonschema` package. To fix: pip install jsonschema, "
                          "or use check='json_valid'.") from None
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ConfigError(f"check= is not a valid JSON schema: {e.message}. To fix: correct the schema.") from None

    def fn(text: str) -> bool:
        return validator.is_valid(_json(text))

    key = json.dumps(schema, sort_keys=True)
    return Check("schema", key if len(key) < 60 else key[:57] + "...", fn, key)


def as_check(value: object) -> Check | None:
    """Normalise what `check=` accepts into a `Check` (None stays None)."""
    if value is None or isinstance(value, Check):
        return value
    if isinstance(value, dict):
        return _schema_check(value)
    if isinstance(value, str):
        if value in BUILTIN_CHECKS:
            return Check("builtin", value, BUILTIN_CHECKS[value], value)
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise ConfigError(f"check={value!r} is neither a built-in check ({', '.join(BUILTIN_CHECKS)}) nor "
                              f"a valid regular expression ({e}). To fix: name a built-in or correct the "
                              "pattern.") from None
        return Check("regex", value, lambda text: pattern.search(text) is not None, value)
    if callable(value):
        return Check("callable", getattr(value, "__qualname__", repr(value)), value, value)
    raise ConfigError(f"check= must be a callable, a JSON schema (dict), a regex or a built-in name "
                      f"({', '.join(BUILTIN_CHECKS)}); got {type(value).__name__}")


def confidence(choice: dict[str, Any]) -> float | None:
    """exp(mean token logprob) of an OpenAI chat choice; None when the engine returned no logprobs."""
    content = ((choice.get("logprobs") or {}).get("content")) or []
    lps = [t["logprob"] for t in content if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    return math.exp(sum(lps) / len(lps)) if lps else None
