"""A bounded memo of what the runtime derives from an `Intent` (its route, its fallbacks).

Why looked up by identity first: a server and a wrapped node pass the same `Intent` object on
every call, and hashing a pydantic model (all its fields, its constraints model too) cost more
than the rest of the lookup. An equal `Intent` built anew (a request that carries its own
constraints) still finds the entry by equality, so nothing is derived twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from murakkab_lg.spec import Intent

__all__ = ("IntentMemo",)

V = TypeVar("V")


class IntentMemo(Generic[V]):
    """Values per (intent, key); the least recently used is dropped past `limit` entries, so
    requests with ever-new constraints cannot grow it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_value: OrderedDict[tuple[Intent, Hashable], V] = OrderedDict()
        # id -> (the intent itself, held so that its id is not reused meanwhile, and the value)
        self._by_id: dict[tuple[int, Hashable], tuple[Intent, V]] = {}
        self._lock = threading.Lock()

    def get(self, intent: Intent, key: Hashable = None) -> V | None:
        hit = self._by_id.get((id(intent), key))
        if hit is not None and hit[0] is intent:
            return hit[1]
        with self._lock:
            value = self._by_value.get((intent, key))
            if value is None:
                return None
            self._by_value.move_to_end((intent, key))
            self._remember_id(intent, key, value)
        return value

    def put(self, intent: Intent, key: Hashable, value: V) -> None:
        with self._lock:
            self._by_value[(intent, key)] = value
            if len(self._by_value) > self.limit:
                self._by_value.popitem(last=False)
            self._remember_id(intent, key, value)

    def _remember_id(self, intent: Intent, key: Hashable, value: V) -> None:
        if len(self._by_id) >= self.limit:
            self._by_id.clear()  # rebuilt from `_by_value` by the next lookups
        self._by_id[(id(intent), key)] = (intent, value)

    def clear(self) -> None:
        with self._lock:
            self._by_value.clear()
            self._by_id.clear()

    def values(self) -> Iterator[V]:
        with self._lock:
            return iter(list(self._by_value.values()))

    def __len__(self) -> int:
        return len(self._by_value)
