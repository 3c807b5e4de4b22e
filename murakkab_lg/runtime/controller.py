"""The re-planning loop: a daemon thread that applies `control`'s pure decisions to a Runtime.

Every `interval_s` it takes one live snapshot, asks `control.drift` and `control.step` per
workflow, and when a re-plan is due runs it as drain-and-swap (`Runtime.replan`). It holds no
decision logic of its own, so the simulator can drive the same decisions without this thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from murakkab_lg.runtime import control
from murakkab_lg.runtime.control import AdaptiveConfig, ControllerState, ReplanEvent

if TYPE_CHECKING:
    from murakkab_lg.runtime.runtime import Runtime

__all__ = ("Controller",)

log = logging.getLogger("murakkab_lg.runtime")


class Controller:
    def __init__(self, runtime: Runtime, cfg: AdaptiveConfig) -> None:
        self.runtime = runtime
        self.cfg = cfg
        self.states: dict[str, ControllerState] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="murakkab-controller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.cfg.drain_timeout_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.interval_s):
            try:
                self.tick(time.monotonic())
            except Exception:  # the loop must outlive one bad tick; the next one tries again
                log.exception("adaptive controller tick failed")

    def tick(self, now: float) -> list[ReplanEvent]:
        """One pass over every planned workflow; returns the re-plans it made."""
        rt = self.runtime
        snap = rt.live.snapshot()
        done = []
        for name, plan in list(rt.plans.items()):
            workflow = rt.workflows.get(name)
            if workflow is None or name.startswith("intent:"):
                continue
            reasons = control.drift(plan, workflow, snap, self.cfg)
            state, due = control.step(self.states.get(name, ControllerState()), reasons, now, self.cfg)
            self.states[name] = state
            if due and not self._stop.is_set():
                done.append(rt.replan(name, reasons, snap))
        return done
