"""The llama.cpp adapter against a real llama-server running SmolLM2-135M."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from murakkab_lg.backends.engines.llamacpp import ENV_BINARY, LlamaCppEngine, build_argv, find_llama_server
from murakkab_lg.errors import EngineNotFoundError, EngineStartError
from murakkab_lg.spec import LlamaCppSettings

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once `pid` no longer exists (or is a reaped zombie of someone else)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def engine(tiny_model: str):
    eng = LlamaCppEngine("tiny-test", tiny_model, LlamaCppSettings(threads=2, parallel=2, ctx_size=1024))
    eng.start(timeout_s=60)
    yield eng
    eng.stop()


def test_completion(engine: LlamaCppEngine) -> None:
    resp = engine.complete({"messages": QUESTION, "max_tokens": 12, "temperature": 0})
    assert "paris" in resp["choices"][0]["message"]["content"].lower()
    assert resp["usage"]["completion_tokens"] > 0
    assert engine.healthy()
    assert engine.cpu_seconds() is not None and engine.cpu_seconds() > 0


def test_streaming(engine: LlamaCppEngine) -> None:
    chunks = list(engine.stream({"messages": QUESTION, "max_tokens": 12, "temperature": 0,
                                 "stream_options": {"include_usage": True}}))
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert "paris" in text.lower()
    assert len([c for c in chunks if c.get("choices")]) > 2  # really streamed, token by token
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_two_parallel_slots_interleave(engine: LlamaCppEngine) -> None:
    """With -np 2 both streams produce tokens before either finishes (continuous batching)."""
    spans: dict[str, list[float]] = {"a": [], "b": []}
    body = {"messages": [{"role": "user", "content": "Count from one to forty in words."}], "max_tokens": 48,
            "temperature": 0}

    def run(key: str) -> None:
        for c in engine.stream(body):
            if c.get("choices") and c["choices"][0]["delta"].get("content"):
                spans[key].append(time.monotonic())

    threads = [threading.Thread(target=run, args=(k,)) for k in spans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a, b = spans["a"], spans["b"]
    assert len(a) > 10 and len(b) > 10
    assert a[0] < b[-1] and b[0] < a[-1], "the second stream waited for the first: slots not parallel"
    slots = engine.client.get("/slots").json()
    assert len(slots) == 2


def test_argv_carries_plan_settings(tmp_path: Path) -> None:
    s = LlamaCppSettings(threads=3, parallel=4, ctx_size=1024, batch_size=256, ubatch_size=128, no_mmap=True)
    argv = build_argv(Path("/bin/llama-server"), tmp_path / "m.gguf", s, port=9999, alias="dep")
    joined = " ".join(argv)
    for flag in ("-t 3", "-tb 3", "-np 4", "-c 4096", "-b 256", "-ub 128", "--port 9999", "--host 127.0.0.1",
                 "-a dep", "--no-mmap"):
        assert flag in joined


def test_clean_shutdown_leaves_no_process(tiny_model: str) -> None:
    eng = LlamaCppEngine("tiny-stop", tiny_model, LlamaCppSettings(threads=1, parallel=1, ctx_size=512))
    eng.start(timeout_s=60)
    pid = eng.process.pid
    eng.stop()
    assert _gone(pid)
    assert not eng.healthy()


_PARENT = textwrap.dedent("""
    import os, signal, sys, time
    from murakkab_lg.backends.engines.llamacpp import LlamaCppEngine
    from murakkab_lg.spec import LlamaCppSettings
    e = LlamaCppEngine("orphan-check", sys.argv[1], LlamaCppSettings(threads=1, parallel=1, ctx_size=512))
    e.start(timeout_s=60)
    print(e.process.pid, flush=True)
    if sys.argv[2] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
""")


@pytest.mark.parametrize("how", ["crash", "ctrl-c", "normal-exit"])
def test_no_orphan_when_parent_ends(tiny_model: str, how: str) -> None:
    script = _PARENT if how != "normal-exit" else _PARENT.replace("time.sleep(60)", "sys.exit(0)")
    proc = subprocess.Popen([sys.executable, "-c", script, tiny_model, how], stdout=subprocess.PIPE, text=True)
    child_pid = int(proc.stdout.readline())
    if how == "ctrl-c":
        proc.send_signal(2)
    try:
        proc.wait(90)  # generous: on a loaded 2-core CI machine the parent's clean stop alone took > 30 s
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert _gone(child_pid), f"llama-server {child_pid} outlived its parent ({how})"


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "no-such-llama-server"))
    with pytest.raises(EngineNotFoundError, match="not an executable file"):
        find_llama_server()


def _fake_binary(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_never_ready_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: str) -> None:
    monkeypatch.setenv(ENV_BINARY, str(_fake_binary(tmp_path, "echo 'loading forever'; exec sleep 30")))
    eng = LlamaCppEngine("stuck", tiny_model, LlamaCppSettings(threads=1))
    with pytest.raises(EngineStartError, match=r"not ready within 1 s(.|\n)*loading forever"):
        eng.start(timeout_s=1.0)
    assert _gone(eng.process.pid)


def test_early_exit_shows_log_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: str) -> None:
    monkeypatch.setenv(ENV_BINARY, str(_fake_binary(tmp_path, "echo 'error: bad flag' >&2; exit 3")))
    eng = LlamaCppEngine("dies", tiny_model, LlamaCppSettings(threads=1))
    with pytest.raises(EngineStartError, match=r"exited with code 3(.|\n)*bad flag"):
        eng.start(timeout_s=10.0)


def test_bundled_binary_found_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BINARY, raising=False)
    path = find_llama_server()
    assert path.name == "llama-server" and os.access(path, os.X_OK)


def test_corrupt_gguf_is_refused_before_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              tiny_model: str) -> None:
    """A GGUF whose sha256 does not match its pin never reaches llama-server."""
    from murakkab_lg.catalog.models import embedded_model
    from murakkab_lg.catalog.pull import model_path
    from murakkab_lg.errors import ModelError

    good = model_path(embedded_model(tiny_model))
    monkeypatch.setenv("MURAKKAB_CACHE", str(tmp_path))
    bad = model_path(embedded_model(tiny_model))
    bad.parent.mkdir(parents=True)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte off
    bad.write_bytes(bytes(data))
    eng = LlamaCppEngine("corrupt", tiny_model, LlamaCppSettings(threads=1))
    with pytest.raises(ModelError, match=r"'smollm2-135m'.*fails its pinned sha256.*murakkab models pull smollm2-135m"):
        eng.start(timeout_s=10)
    assert eng.process is None
