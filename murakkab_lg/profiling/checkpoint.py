"""A resumable record of finished profiling work, written after every unit.

Profiling the large model on two cores takes minutes; an interrupted run (Ctrl-C, a crash, a
reboot) must not throw that away. Every finished unit (one eval item, one load level, one
memory reading) is stored under a key that names exactly what was measured, and the file is
replaced atomically, so a partial file is always valid JSON and a rerun skips what is done.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ("Checkpoint",)

_VERSION = 1


class Checkpoint:
    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._done: dict[str, Any] = {}
        if fresh:
            path.unlink(missing_ok=True)
        elif path.is_file():
            try:
                data = json.loads(path.read_text())
                if data.get("version") == _VERSION:
                    self._done = dict(data.get("done", {}))
            except (OSError, ValueError):
                self._done = {}  # unreadable: start over rather than trust half a file

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: str) -> Any:
        return self._done.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._done[key] = value
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"version": _VERSION, "done": self._done}))
        os.replace(tmp, self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
