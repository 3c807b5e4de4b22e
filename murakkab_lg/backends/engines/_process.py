"""Child engine processes that never outlive us.

Three exits must leave no orphan: a normal exit (atexit stops every live engine), Ctrl-C (the
KeyboardInterrupt unwinds to atexit), and a crash or SIGKILL of the parent. For the last, Linux's
PR_SET_PDEATHSIG asks the kernel to signal the child when its parent dies (SIGTERM by default; an
engine whose graceful shutdown can hang asks for SIGKILL, since no one is left to escalate). The kernel ties that
signal to the *thread* that forked the child, so every engine is forked from one spawner thread
that lives as long as the process; otherwise an engine started from a short-lived worker thread
(LangGraph runs sync nodes in a pool) would be killed when that thread exits.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

__all__ = ("ChildProcess", "cpu_seconds_of", "start_time_of")

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


def _set_pdeathsig(sig: signal.Signals) -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:
        pass


class _Spawner:
    """One daemon thread that forks every child, so PDEATHSIG follows the process's life."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

    def spawn(self, fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="murakkab-spawner", daemon=True)
                self._thread.start()
        fut: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((fn, fut))
        return fut.result()


_spawner = _Spawner()


class ChildProcess:
    """A child process with its output in a log file, stopped TERM-then-KILL."""

    def __init__(self, argv: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 death_signal: signal.Signals = signal.SIGTERM) -> None:
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        preexec = functools.partial(_set_pdeathsig, death_signal) if sys.platform.startswith("linux") else None

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, preexec_fn=preexec, close_fds=True,
            )

        try:
            self.popen = _spawner.spawn(start)
        finally:
            log.close()
        _live.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        _live.discard(self)


def cpu_seconds_of(pid: int) -> float | None:
    """User+system CPU seconds of `pid` from /proc (None where /proc is not available)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def start_time_of(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat field 22); None if it is gone.

    A PID is reused once its process is reaped, so a PID remembered earlier names the same process
    only while this value is unchanged: compare it before signalling a remembered PID.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    try:
        return int(raw[raw.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


@atexit.register
def _stop_all() -> None:
    for child in list(_live):
        with contextlib.suppress(Exception):
            child.stop(timeout_s=5.0)
