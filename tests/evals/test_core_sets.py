"""Built-in eval sets: registered, small, licensed, and their scorers score what they claim."""

from __future__ import annotations

import pytest

from murakkab_lg.evals import eval_set_names, get_eval_set
from murakkab_lg.evals import scorers as s
from murakkab_lg.evals.builtin import BUILTIN_SETS
from murakkab_lg.spec import intent_metric

# One correct solution per code item: proves every item's asserts are satisfiable as written.
SOLUTIONS = {
    "k01": "def add(a, b):\n    return a + b",
    "k02": "def is_even(n):\n    return n % 2 == 0",
    "k03": "def reverse_string(s):\n    return s[::-1]",
    "k04": "def max_of_list(xs):\n    return max(xs)",
    "k05": "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())",
    "k06": "import math\ndef factorial(n):\n    return math.factorial(n)",
    "k07": "def is_palindrome(s):\n    return s == s[::-1]",
    "k08": "def sum_of_squares(n):\n    return sum(i * i for i in range(1, n + 1))",
    "k09": ("def fizzbuzz(n):\n    return 'FizzBuzz' if n % 15 == 0 else 'Fizz' if n % 3 == 0 "
            "else 'Buzz' if n % 5 == 0 else str(n)"),
    "k10": "def unique_sorted(xs):\n    return sorted(set(xs))",
    "k11": "def word_count(s):\n    return len(s.split())",
    "k12": "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32",
}


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_core_set_is_registered_small_and_documented(name: str) -> None:
    assert name in eval_set_names()
    es = get_eval_set(name)
    assert 10 <= len(es.items) <= 20
    assert len({i.id for i in es.items}) == len(es.items)
    assert es.metric == intent_metric(es.intent) and "Apache-2.0" in es.license
    body = es.body(es.items[0])
    assert body["temperature"] == 0.0 and body["messages"][0]["role"] == "system"


def test_code_items_pass_with_correct_solutions_and_fail_with_wrong_ones() -> None:
    es = get_eval_set("core.code")
    for item in es.items:
        assert es.score(item, f"```python\n{SOLUTIONS[item.id]}\n```") == 1.0, item.id
    assert es.score(es.items[0], "```python\ndef add(a, b):\n    return a - b\n```") == 0.0


def test_code_scorer_isolates_and_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s, "CODE_TIMEOUT_S", 1.0)
    assert s.score_code("while True:\n    pass", "assert True") == 0.0
    assert s.score_code("import sys\nsys.exit(3)", "") == 0.0


def test_scorers_are_lenient_about_form_strict_about_content() -> None:
    assert s.score_classify("Billing.", "billing") == 1.0
    assert s.score_classify("shipping", "billing") == 0.0
    assert s.score_extract('```json\n{"Name": "Maria Lopez", "order_id": 48213}\n```',
                           {"name": "Maria Lopez", "order_id": "48213"}) == 1.0
    assert s.score_extract('{"name": "Maria"}', {"name": "Maria Lopez", "order_id": "48213"}) == 0.0
    assert s.score_extract("no json here", {"a": "1"}) == 0.0
    assert s.score_extract('{"amount": "1,250"}', {"amount": "1250"}) == 1.0
    assert s.score_reason("The answer is 1,250.", 1250) == 1.0 and s.score_reason("12", 21) == 0.0
    assert s.score_summarize("Council plans 12 million dollar library.", [["library"], ["12 million"], ["2026"]]) \
        == pytest.approx(2 / 3)
    assert s.score_answer("It is Paris.", ["Paris"]) == 1.0
    assert s.score_answer("Parisian food", ["Paris"]) == 0.0  # whole words only
    assert s.score_answer("Carbon dioxide (CO2)", ["carbon dioxide", "CO2"]) == 1.0
