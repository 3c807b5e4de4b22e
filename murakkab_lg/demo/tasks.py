"""The ticket-triage tasks: one prompt builder and one scorer per node.

The same builders serve the LangGraph demo and the eval sets that `murakkab profile` measures,
so the quality a plan predicts for a node and the quality the demo reports are scored the same
way on the same tickets.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Literal

from murakkab_lg.evals.base import EvalItem, EvalSet, load_json_data, register_eval_set
from murakkab_lg.spec import register_intent

__all__ = ("ACTIONS", "SENTIMENTS", "TASKS", "Split", "Ticket", "tickets")

SENTIMENTS = ("positive", "negative", "neutral")
ACTIONS = ("replace", "refund", "escalate", "none")
Ticket = dict[str, Any]


@cache
def _data() -> dict[str, Any]:
    return load_json_data("murakkab_lg.demo", "data/tickets.json")


Split = Literal["calibration", "heldout"]


def tickets(split: Split | None = None) -> list[Ticket]:
    """The labelled tickets, or one split of them.

    `murakkab profile` measures the triage intents on the calibration split and `murakkab demo`
    scores its runs on the held-out split, so the quality the planner relied on is never checked on
    the items it was measured on (no ticket is in both).
    """
    return [t for t in _data()["tickets"] if split is None or t["split"] == split]


def policy() -> str:
    return _data()["policy"]


def _first_word_in(text: str, choices: tuple[str, ...]) -> str | None:
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in choices:
            return word
    return None


# -- sentiment ------------------------------------------------------------------------------------
_SENTIMENT_SHOTS = (
    ("Thanks, the mug is great!", "positive"),
    ("The mug arrived broken.", "negative"),
    ("Please cancel my order.", "neutral"),
)


def sentiment_messages(t: Ticket) -> list[dict[str, str]]:
    """Few-shot: the small models answer in one word far more reliably with three examples."""
    msgs = [{"role": "system", "content": "You are a sentiment classifier for customer messages. Reply with "
             "exactly one word: positive, negative or neutral."}]
    for text, label in _SENTIMENT_SHOTS:
        msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": label}]
    return [*msgs, {"role": "user", "content": t["text"]}]


def score_sentiment(output: str, label: str) -> float:
    return float(_first_word_in(output, SENTIMENTS) == label)


# -- extract --------------------------------------------------------------------------------------
EXTRACT_FORMAT = {"type": "json_schema", "json_schema": {"name": "order", "schema": {
    "type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["order_id", "amount"]}}}


def extract_messages(t: Ticket) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Customer message: {t['text']}\n\nReturn a JSON object with the "
             'keys "order_id" (string, like ORD-12345) and "amount" (number, in dollars).'}]


def parse_extract(output: str) -> dict[str, Any]:
    try:
        obj = json.loads(output)
    except ValueError:
        m = re.search(r"\{.*\}", output, re.S)
        try:
            obj = json.loads(m.group(0)) if m else {}
        except ValueError:
            obj = {}
    return obj if isinstance(obj, dict) else {}


def _amount(value: Any) -> float | None:
    try:
        return float(str(value).replace("$", "").replace(",", ""))
    except ValueError:
        return None


def score_extract(output: str, ref: dict[str, Any]) -> float:
    obj = parse_extract(output)
    ok_id = str(obj.get("order_id", "")).strip().upper() == ref["order_id"]
    amount = _amount(obj.get("amount"))
    ok_amount = amount is not None and abs(amount - ref["amount"]) < 0.005
    return (ok_id + ok_amount) / 2


# -- decide ---------------------------------------------------------------------------------------
def decide_messages(t: Ticket) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Support policy: {policy()}\n\nCustomer message: {t['text']}\n\n"
             "Which action does the policy require: replace, refund, escalate or none? Answer with one word."}]


def first_action(output: str) -> str | None:
    return _first_word_in(output, ACTIONS)


def score_decide(output: str, label: str) -> float:
    return float(first_action(output) == label)


# -- reply ----------------------------------------------------------------------------------------
_PROMISE = {"replace": "send a replacement", "refund": "refund the payment",
            "escalate": "pass the case to a senior agent", "none": "thank the customer"}
_CHECK_WORDS = {"replace": ("replace", "replacement", "new one"), "refund": ("refund",),
                "escalate": ("senior", "escalat", "specialist", "manager", "supervisor"),
                "none": ("thank",)}


def reply_messages(t: Ticket, order_id: str, action: str) -> list[dict[str, str]]:
    promise = _PROMISE.get(action, _PROMISE["escalate"])
    return [{"role": "system", "content": "You are a friendly support agent of an online shop. You write short "
             "replies to customers on behalf of the shop."},
            {"role": "user", "content": f"Customer message: {t['text']}\n\nWrite our one-sentence reply. Start it "
             f"with \"About order {order_id}:\" and say that we will {promise}."}]


def score_reply(output: str, ref: dict[str, str]) -> float:
    """Scored against the node's own inputs (the order id and action it was asked to state), so
    an upstream mistake is charged to the upstream node, not to the reply."""
    text = output.lower()
    ok_id = ref["order_id"].lower() in text
    ok_action = any(w in text for w in _CHECK_WORDS[ref["action"]])
    return float(ok_id and ok_action)


# -- registration ---------------------------------------------------------------------------------
TASKS = {
    "triage.sentiment": "accuracy of the sentiment label (first of positive/negative/neutral in the answer)",
    "triage.extract": "share of the two fields (order_id, amount) extracted exactly",
    "triage.decide": "accuracy of the policy action (first of replace/refund/escalate/none in the answer)",
    "triage.reply": "share of replies that mention the order id and the promised action",
}
for _name, _metric in TASKS.items():
    register_intent(_name, _metric)


def _set(name: str) -> EvalSet:
    ts = tickets("calibration")
    if name == "triage.sentiment":
        items = [EvalItem(id=t["id"], messages=tuple(sentiment_messages(t)), reference=t["sentiment"]) for t in ts]
        return EvalSet(name=name, intent=name, metric=TASKS[name], items=tuple(items),
                       scorer=score_sentiment, max_tokens=4)
    if name == "triage.extract":
        items = [EvalItem(id=t["id"], messages=tuple(extract_messages(t)),
                          reference={"order_id": t["order_id"], "amount": t["amount"]}) for t in ts]
        return EvalSet(name=name, intent=name, metric=TASKS[name], items=tuple(items), scorer=score_extract,
                       max_tokens=40, request_extra={"response_format": EXTRACT_FORMAT})
    if name == "triage.decide":
        items = [EvalItem(id=t["id"], messages=tuple(decide_messages(t)), reference=t["action"]) for t in ts]
        return EvalSet(name=name, intent=name, metric=TASKS[name], items=tuple(items),
                       scorer=score_decide, max_tokens=4)
    items = [EvalItem(id=t["id"], messages=tuple(reply_messages(t, t["order_id"], t["action"])),
                      reference={"order_id": t["order_id"], "action": t["action"]}) for t in ts]
    return EvalSet(name=name, intent=name, metric=TASKS[name], items=tuple(items), scorer=score_reply,
                   max_tokens=48)


for _name in TASKS:
    register_eval_set(_name, lambda n=_name: _set(n))
