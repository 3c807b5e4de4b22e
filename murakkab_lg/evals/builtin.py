"""The built-in eval sets (`core.<intent>`), loaded from JSON shipped in `evals/data/`.

Each data file is written for this project (Apache-2.0); its `license` field says so and travels
into the loaded EvalSet. Prompts are built here, not stored, so every item of an intent is asked
the same way and only the content differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from murakkab_lg.evals import scorers
from murakkab_lg.evals.base import EvalItem, EvalSet, Scorer, load_json_data, register_eval_set
from murakkab_lg.spec import intent_metric

__all__ = ("BUILTIN_SETS", "load_builtin", "load_tool_use")



def _classify(raw: dict[str, Any]) -> str:
    return f"Labels: {', '.join(raw['labels'])}\nMessage: {raw['text']}\nLabel:"


def _extract(raw: dict[str, Any]) -> str:
    return f"Keys: {', '.join(raw['fields'])}\nText: {raw['text']}"


def _question(raw: dict[str, Any]) -> str:
    return raw["question"]


def _text(raw: dict[str, Any]) -> str:
    return raw["text"]


def _code(raw: dict[str, Any]) -> str:
    return raw["prompt"]


# intent -> (data file, user-prompt builder, scorer)
_SPECS: dict[str, tuple[str, Callable[[dict[str, Any]], str], Scorer]] = {
    "classify": ("classify.json", _classify, scorers.score_classify),
    "extract": ("extract.json", _extract, scorers.score_extract),
    "reason": ("reason.json", _question, scorers.score_reason),
    "summarize": ("summarize.json", _text, scorers.score_summarize),
    "answer": ("answer.json", _question, scorers.score_answer),
    "code": ("code.json", _code, scorers.score_code),
}

BUILTIN_SETS: tuple[str, ...] = (*(f"core.{intent}" for intent in _SPECS), "core.tool-use")


def load_builtin(intent: str) -> EvalSet:
    filename, build, scorer = _SPECS[intent]
    data = load_json_data("murakkab_lg.evals", f"data/{filename}")
    items = tuple(
        EvalItem(
            id=raw["id"],
            messages=({"role": "system", "content": data["system"]}, {"role": "user", "content": build(raw)}),
            reference=raw["reference"],
        )
        for raw in data["items"]
    )
    return EvalSet(name=data["name"], intent=data["intent"], metric=intent_metric(intent), items=items,
                   scorer=scorer, max_tokens=int(data["max_tokens"]), license=data["license"])


def load_tool_use() -> EvalSet:
    """`core.tool-use`: each item offers one to three tools (the shared catalogue in the data file)
    with `tool_choice` auto, as an agent does, and is scored on the message's `tool_calls`."""
    data = load_json_data("murakkab_lg.evals", "data/tool_use.json")
    catalogue = data["tools"]
    items = tuple(
        EvalItem(
            id=raw["id"],
            messages=({"role": "system", "content": data["system"]}, {"role": "user", "content": raw["text"]}),
            reference={"name": raw["reference"], "schema": catalogue[raw["reference"]]["parameters"],
                       "expect": raw.get("expect") or {}},
            request={"tools": [{"type": "function", "function": {"name": t, **catalogue[t]}} for t in raw["tools"]],
                     "tool_choice": "auto"},
        )
        for raw in data["items"]
    )
    return EvalSet(name=data["name"], intent=data["intent"], metric=intent_metric("tool-use"), items=items,
                   scorer=scorers.score_tool_use, max_tokens=int(data["max_tokens"]), license=data["license"],
                   scores="message")


def _register() -> None:
    for intent in _SPECS:
        register_eval_set(f"core.{intent}", lambda intent=intent: load_builtin(intent))
    register_eval_set("core.tool-use", load_tool_use)


_register()
