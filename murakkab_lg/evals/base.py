"""Eval sets: small labelled tasks per intent, each with the one scorer that defines its quality.

A profile's quality figure for an intent is the mean score of a model on that intent's eval set,
so the scorer is the single definition of "quality" for that intent; keeping set and scorer
together prevents a profile from being scored one way and a demo another.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from murakkab_lg.errors import ConfigError

__all__ = ("EvalItem", "EvalSet", "eval_set_names", "get_eval_set", "register_eval_set", "wilson_interval")

Scorer = Callable[[Any, Any], float]  # (model output: text or message, reference) -> score in [0, 1]


class EvalItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    messages: tuple[dict[str, Any], ...]  # OpenAI chat messages
    reference: Any
    request: dict[str, Any] = {}  # per-item request fields, e.g. the tools it offers


class EvalSet(BaseModel):
    """Items for one intent, the request settings they need, and their scorer."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    intent: str
    metric: str  # one line: how a score is computed
    items: tuple[EvalItem, ...]
    scorer: Scorer
    max_tokens: int = 64
    request_extra: dict[str, Any] = {}  # e.g. response_format
    license: str = "Apache-2.0 (written for murakkab-lg)"
    scores: Literal["content", "message"] = "content"  # what the scorer reads: the text, or the whole message

    def body(self, item: EvalItem) -> dict[str, Any]:
        return {"messages": list(item.messages), "max_tokens": self.max_tokens, "temperature": 0.0,
                "seed": 0, **self.request_extra, **item.request}

    def output(self, resp: dict[str, Any]) -> Any:
        """What the scorer sees of a response: its text ("" when none), or its message (tool calls)."""
        try:
            msg = resp["choices"][0]["message"] or {}
        except (KeyError, IndexError, TypeError):
            msg = {}
        return dict(msg) if self.scores == "message" else (msg.get("content") or "")

    def score(self, item: EvalItem, output: Any) -> float:
        return float(self.scorer(output, item.reference))


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (works at 0 and n, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


_REGISTRY: dict[str, Callable[[], EvalSet]] = {}


def register_eval_set(name: str, loader: Callable[[], EvalSet]) -> None:
    _REGISTRY[name] = loader


def eval_set_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_eval_set(name: str) -> EvalSet:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ConfigError(f"unknown eval set {name!r}; valid: {', '.join(eval_set_names())}") from None


def load_json_data(package: str, filename: str) -> Any:
    """A JSON data file shipped inside `package` (works from wheels and zips)."""
    return json.loads((resources.files(package) / filename).read_text())
