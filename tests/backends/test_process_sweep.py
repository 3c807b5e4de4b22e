"""The vLLM sweep never signals a PID that now belongs to another process (PIDs are reused)."""

from __future__ import annotations

import subprocess
import sys

from murakkab_lg.backends.engines._process import start_time_of
from murakkab_lg.backends.engines.vllm import VllmEngine
from murakkab_lg.spec import VllmSettings


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_start_time_is_stable_for_a_process_and_none_once_it_is_gone() -> None:
    p = _sleeper()
    try:
        t = start_time_of(p.pid)
        assert t is not None and t == start_time_of(p.pid)
    finally:
        p.kill()
        p.wait()
    assert start_time_of(p.pid) is None


def test_sweep_kills_remembered_workers_but_spares_a_pid_whose_start_time_changed() -> None:
    worker, stranger = _sleeper(), _sleeper()
    try:
        eng = VllmEngine("x", "m", VllmSettings())
        eng._workers = {worker.pid: start_time_of(worker.pid),
                        # as if `stranger` had taken over a remembered worker's PID: other start time
                        stranger.pid: (start_time_of(stranger.pid) or 0) - 1}
        eng._sweep()
        assert worker.wait(5) == -9  # SIGKILLed
        assert stranger.poll() is None  # never signalled
        assert eng._workers == {}
    finally:
        for p in (worker, stranger):
            p.kill()
            p.wait()
