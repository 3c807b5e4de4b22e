"""Scorers: (model output text, reference) -> score in [0, 1], one per built-in intent.

Each scorer is deliberately lenient about form (case, spacing, code fences, a trailing period)
and strict about content, so the score reflects whether the model did the task, not whether it
guessed our formatting.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

__all__ = (
    "extract_code",
    "extract_json",
    "normalize",
    "score_answer",
    "score_classify",
    "score_code",
    "score_extract",
    "score_reason",
    "score_summarize",
    "score_tool_use",
)

CODE_TIMEOUT_S = 5.0
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


def normalize(text: str) -> str:
    """Lower case, collapse whitespace, strip surrounding punctuation and quotes."""
    return re.sub(r"\s+", " ", str(text)).strip().strip(" .,:;!?\"'`*").lower()


def score_classify(output: str, reference: str) -> float:
    """1 if the output is the label (or the label followed by nothing but punctuation), else 0."""
    out = normalize(output)
    ref = normalize(reference)
    if out == ref:
        return 1.0
    first_line = normalize(out.splitlines()[0]) if out else ""
    return 1.0 if first_line in (ref, f"label: {ref}") else 0.0


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (inside a code fence or bare), or None."""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    start = text.find("{")
    if start >= 0:
        depth = 0
        for i, ch in enumerate(text[start:], start):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0:
                candidates.append(text[start : i + 1])
                break
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _norm_value(v: Any) -> str:
    s = normalize("" if v is None else v)
    s = s.replace(",", "") if _NUMBER.fullmatch(s.replace(",", "")) else s
    try:
        f = float(s)
        return f"{f:g}"
    except ValueError:
        return s


def score_extract(output: str, reference: dict[str, Any]) -> float:
    """Share of reference fields whose value matches exactly after normalising (0 if no JSON)."""
    got = extract_json(output)
    if not got or not reference:
        return 0.0
    lowered = {normalize(k): v for k, v in got.items()}
    hits = sum(_norm_value(lowered.get(normalize(k))) == _norm_value(v) for k, v in reference.items())
    return hits / len(reference)


def score_reason(output: str, reference: float) -> float:
    """1 if the last number in the output equals the reference, else 0."""
    nums = _NUMBER.findall(output.replace(",", ""))
    if not nums:
        return 0.0
    try:
        return 1.0 if abs(float(nums[-1]) - float(reference)) < 1e-6 else 0.0
    except ValueError:
        return 0.0


def score_summarize(output: str, reference: list[list[str]]) -> float:
    """Share of required facts present; each fact is a list of accepted spellings."""
    if not reference:
        return 0.0
    out = normalize(output)
    return sum(any(normalize(alt) in out for alt in fact) for fact in reference) / len(reference)


def score_answer(output: str, reference: list[str]) -> float:
    """1 if any accepted answer appears in the output as a whole word or phrase, else 0."""
    out = f" {re.sub(r'[^a-z0-9 ]', ' ', normalize(output))} "
    for alt in reference:
        needle = re.sub(r"[^a-z0-9 ]", " ", normalize(alt)).strip()
        if needle and f" {needle} " in re.sub(r"\s+", " ", out):
            return 1.0
    return 0.0


def extract_code(text: str) -> str:
    """The first fenced code block, or the whole text when there is no fence."""
    m = re.search(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", text, re.S)
    return (m.group(1) if m else text).strip()


def score_code(output: str, reference: str) -> float:
    """1 if the generated code plus the reference asserts runs cleanly in a fresh interpreter.

    The code runs in a child `python -I` with a timeout, in an empty temporary directory, with
    no stdin: model output is untrusted and must never run inside the profiler's own process.
    """
    program = extract_code(output) + "\n\n" + reference + "\n"
    with tempfile.TemporaryDirectory(prefix="murakkab-eval-") as tmp:
        path = os.path.join(tmp, "candidate.py")
        with open(path, "w") as f:
            f.write(program)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", path], cwd=tmp, stdin=subprocess.DEVNULL,
                capture_output=True, timeout=CODE_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired:
            return 0.0
    return 1.0 if proc.returncode == 0 else 0.0


def score_tool_use(message: dict[str, Any], reference: dict[str, Any]) -> float:
    """1 if the first tool call names the reference tool, with arguments valid for its schema that
    carry the request's key values, else 0.

    `message` is the whole assistant message (its `tool_calls`); `reference` holds the tool's
    `name`, the JSON `schema` of its parameters and `expect`: argument -> accepted values (strings
    compared after `normalize`, numbers as numbers). A call written as text in `content` scores 0:
    an agent only runs calls that arrive as `tool_calls`. The values matter because a valid shape
    alone rewards a made-up ticker or order id.
    """
    try:
        import jsonschema
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ImportError("scoring tool-use needs jsonschema. To fix: pip install jsonschema") from e
    calls = (message or {}).get("tool_calls") or []
    if not calls:
        return 0.0
    fn = calls[0].get("function") or {}
    if fn.get("name") != reference["name"]:
        return 0.0
    try:
        raw = fn.get("arguments") or "{}"
        args = json.loads(raw) if isinstance(raw, str) else raw
        jsonschema.validate(args, reference["schema"])
    except (ValueError, jsonschema.ValidationError, jsonschema.SchemaError):
        return 0.0
    for key, accepted in (reference.get("expect") or {}).items():
        if _norm_value(args.get(key)) not in {_norm_value(v) for v in accepted}:
            return 0.0
    return 1.0
