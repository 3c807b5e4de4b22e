from __future__ import annotations

from murakkab_lg.runtime.intent_memo import IntentMemo
from murakkab_lg.spec import Intent


def test_found_by_identity_and_by_equality() -> None:
    memo: IntentMemo[str] = IntentMemo(limit=4)
    a = Intent("classify", min_quality=0.8)
    memo.put(a, "dep", "value")
    assert memo.get(a, "dep") == "value"  # the same object
    assert memo.get(Intent("classify", min_quality=0.8), "dep") == "value"  # an equal one built anew
    assert memo.get(a, "other") is None and memo.get(Intent("classify"), "dep") is None


def test_bounded_least_recently_used_first() -> None:
    memo: IntentMemo[int] = IntentMemo(limit=3)
    intents = [Intent("classify", min_quality=q) for q in (0.1, 0.2, 0.3, 0.4)]
    for i, it in enumerate(intents[:3]):
        memo.put(it, None, i)
    assert memo.get(Intent("classify", min_quality=0.1)) == 0  # used: now the most recent
    memo.put(intents[3], None, 3)
    assert len(memo) == 3
    assert memo.get(Intent("classify", min_quality=0.2)) is None  # the least recently used went
    assert sorted(memo.values()) == [0, 2, 3]
    memo.clear()
    assert len(memo) == 0 and memo.get(intents[0]) is None
