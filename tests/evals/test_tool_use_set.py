"""core.tool-use: every item is answerable as labelled, and the scorer reads tool_calls, not text."""

from __future__ import annotations

import json

import jsonschema

from murakkab_lg.evals import get_eval_set
from murakkab_lg.evals.scorers import score_tool_use

TOOL_USE = get_eval_set("core.tool-use")


def _msg(name: str, args: dict) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def test_items_offer_their_reference_tool_and_expect_only_its_parameters():
    for item in TOOL_USE.items:
        body = TOOL_USE.body(item)
        offered = [t["function"]["name"] for t in body["tools"]]
        assert item.reference["name"] in offered and body["tool_choice"] == "auto"
        props = item.reference["schema"]["properties"]
        assert set(item.reference["expect"]) <= set(props), item.id
        jsonschema.Draft202012Validator.check_schema(item.reference["schema"])


def test_a_correct_call_scores_one_and_each_kind_of_miss_zero():
    item = next(i for i in TOOL_USE.items if i.id == "t03")  # "Where is my order 48213?" -> search_orders
    assert TOOL_USE.output({"choices": [{"message": _msg("search_orders", {"order_id": 48213})}]})["tool_calls"]
    assert TOOL_USE.score(item, _msg("search_orders", {"order_id": 48213})) == 1.0
    assert TOOL_USE.score(item, _msg("send_email", {"to": "x", "subject": "y", "body": "z"})) == 0.0  # wrong tool
    assert TOOL_USE.score(item, _msg("search_orders", {"order_id": "48213"})) == 0.0  # invalid: a string
    assert TOOL_USE.score(item, _msg("search_orders", {"order_id": 12345})) == 0.0  # made-up value
    text = '{"name": "search_orders", "arguments": {"order_id": 48213}}'
    assert TOOL_USE.score(item, {"role": "assistant", "content": text}) == 0.0  # a call as text runs nothing
    assert TOOL_USE.score(item, {}) == 0.0


def test_expected_strings_are_compared_leniently():
    ref = {"name": "translate", "schema": {"type": "object"}, "expect": {"target_language": ["Japanese", "ja"]}}
    assert score_tool_use(_msg("translate", {"text": "x", "target_language": "japanese "}), ref) == 1.0
    assert score_tool_use(_msg("translate", {"text": "x", "target_language": "JA"}), ref) == 1.0
    assert score_tool_use(_msg("translate", {"text": "x", "target_language": "Korean"}), ref) == 0.0
