"""The vLLM adapter on CPU: exact command lines, CUDA devices from placements, clear errors, and the
process lifecycle (readiness, drain, stop, no orphans) against a real short-lived process that
speaks vLLM's command line and HTTP API (tests/backends/fake_vllm_server.py)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from murakkab_lg.backends.engines import create_engine
from murakkab_lg.backends.engines.vllm import (
    ENV_PYTHON,
    VllmEngine,
    build_argv,
    build_env,
    cuda_visible_devices,
    find_vllm_python,
    resolve_model,
)
from murakkab_lg.errors import EngineNotFoundError, EngineStartError, EngineUnavailableError, ModelError
from murakkab_lg.runtime.placement import place
from murakkab_lg.spec import Deployment, Device, Inventory, Placement, VllmSettings

FAKE_SERVER = Path(__file__).with_name("fake_vllm_server.py")
PY = "/opt/vllm/bin/python"
HEAD = [PY, "-m", "vllm.entrypoints.openai.api_server"]


@pytest.mark.parametrize(
    ("settings", "tail"),
    [
        (VllmSettings(),
         ["--tensor-parallel-size", "1", "--max-num-seqs", "256", "--gpu-memory-utilization", "0.9"]),
        (VllmSettings(tensor_parallel_size=4, max_num_seqs=64, gpu_memory_utilization=0.45),
         ["--tensor-parallel-size", "4", "--max-num-seqs", "64", "--gpu-memory-utilization", "0.45"]),
        (VllmSettings(quantization="awq", max_model_len=8192, max_num_seqs=32),
         ["--tensor-parallel-size", "1", "--max-num-seqs", "32", "--gpu-memory-utilization", "0.9",
          "--quantization", "awq", "--max-model-len", "8192"]),
        (VllmSettings(tensor_parallel_size=8, quantization="fp8", gpu_memory_utilization=0.12, max_model_len=4096),
         ["--tensor-parallel-size", "8", "--max-num-seqs", "256", "--gpu-memory-utilization", "0.12",
          "--quantization", "fp8", "--max-model-len", "4096"]),
    ],
)
def test_command_line_is_exact_for_each_plan(settings: VllmSettings, tail: list[str]) -> None:
    argv = build_argv(PY, "meta-llama/Llama-3.1-8B-Instruct", settings, port=8123, served_name="llama8b-tp1")
    assert argv == [*HEAD, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama8b-tp1",
                    "--host", "127.0.0.1", "--port", "8123", *tail]


def _h100s(n: int) -> Inventory:
    return Inventory(devices=tuple(Device(id=f"gpu{i}", kind="H100", memory_gb=79.6, gpu_index=i, uuid=f"GPU-{i}")
                                   for i in range(n)))


def test_placed_replicas_get_their_own_gpus_and_settings() -> None:
    dep = Deployment(name="llama70b", model="meta-llama/Llama-3.1-70B-Instruct",
                     engine=VllmSettings(tensor_parallel_size=4), placement=Placement(device="H100"), replicas=2)
    small = Deployment(name="llama8b", model="meta-llama/Llama-3.1-8B-Instruct", engine=VllmSettings(),
                       placement=Placement(device="H100"))
    plan = place([dep, small], _h100s(9), {"llama70b": 200.0, "llama8b": 30.0})
    placed = plan.deployment("llama70b")
    engines = [create_engine(placed, i) for i in range(2)]
    assert all(isinstance(e, VllmEngine) for e in engines)
    visible = [cuda_visible_devices(e.placement, 4, e.replica) for e in engines]
    assert visible == ["0,1,2,3", "4,5,6,7"]
    assert [e.gpus for e in engines] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    small_engine = create_engine(plan.deployment("llama8b"), 0)
    assert cuda_visible_devices(small_engine.placement, 1, 0) == "8"  # the free GPU, not a TP rank
    argv = build_argv(PY, "m/x", placed.engine, port=1, served_name="llama70b")
    assert argv[argv.index("--gpu-memory-utilization") + 1] == f"{placed.engine.gpu_memory_utilization:g}"


def test_mig_slice_is_named_by_uuid_and_cpu_has_no_cuda_devices() -> None:
    mig = Placement(device="A100", gpus=(0,), cuda_visible_devices=("MIG-abc",))
    assert cuda_visible_devices(mig, 1, 0) == "MIG-abc"
    assert cuda_visible_devices(Placement(), 1, 0) is None
    env = build_env({"PATH": "/bin"}, "MIG-abc", local_model=True)
    assert env["CUDA_VISIBLE_DEVICES"] == "MIG-abc"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in build_env({}, None, local_model=False)
    with pytest.raises(EngineStartError, match="needs 2 of them"):
        cuda_visible_devices(Placement(gpus=(0, 1, 2)), 2, 1)


def test_missing_vllm_names_the_extra_and_the_cpu_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_PYTHON, str(tmp_path / "nope" / "python"))
    with pytest.raises(EngineNotFoundError, match="not an executable python"):
        find_vllm_python()
    monkeypatch.setenv(ENV_PYTHON, sys.executable)  # the project venv: no vllm in it
    if _importable_here():
        pytest.skip("vllm is installed in the test interpreter")
    with pytest.raises(EngineNotFoundError, match=r"murakkab-lg\[vllm\].*setup_vllm_cpu\.sh"):
        find_vllm_python()
    monkeypatch.delenv(ENV_PYTHON)
    with pytest.raises(EngineNotFoundError, match=r"vLLM is not installed"):
        find_vllm_python()


def _importable_here() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def test_model_paths_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="neither a local directory nor a Hugging Face repo id"):
        resolve_model("llama-3.1-8b")
    assert resolve_model("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    engine = VllmEngine("m", str(tmp_path / "missing-model"), VllmSettings(), python=Path(sys.executable))
    with pytest.raises(ModelError):
        engine.start(5)
    assert engine.process is None


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A 'python' that claims to have vllm and runs the fake server for `-m vllm...`."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec {sys.executable} {FAKE_SERVER} "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def _alive(pid: int, grace_s: float = 3.0) -> bool:
    """Whether `pid` still runs after `grace_s` (a killed process takes a moment to go)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if raw[raw.rindex(")") + 2] == "Z" or time.monotonic() > deadline:
            return raw[raw.rindex(")") + 2] != "Z"
        time.sleep(0.05)


def test_engine_exiting_early_reports_root_cause_and_log_tail(
        fake_python: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MURAKKAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_VLLM_MODE", "crash")
    monkeypatch.setenv(ENV_PYTHON, str(fake_python))  # found through the env var, probed like a real venv
    engine = VllmEngine("crashy", str(model_dir), VllmSettings())
    with pytest.raises(EngineStartError) as err:
        engine.start(30)
    msg = str(err.value)
    assert "exited with code 3 before it was ready" in msg
    assert "ValueError: fake root cause: not enough memory" in msg  # printed 40 lines above the tail
    assert "Engine core initialization failed" in msg
    assert "traceback line 39" in msg and "traceback line 5\n" not in msg
    assert engine.process is not None and str(engine.process.log_path) in msg


def test_lifecycle_ready_serve_drain_stop_without_orphans(
        fake_python: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MURAKKAB_CACHE", str(tmp_path / "cache"))
    pidfile = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(pidfile))
    monkeypatch.setenv("FAKE_VLLM_DELAY_S", "1.0")
    dep = Deployment(name="tiny", model=str(model_dir), engine=VllmSettings(max_num_seqs=4),
                     placement=Placement(device="H100", gpus=(3,)))
    engine = VllmEngine(dep.name, dep.model, dep.engine, placement=dep.placement, python=fake_python)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    try:
        engine.start(30)
        assert engine.healthy()
        pids = json.loads(pidfile.read_text())
        assert pids["cuda"] == "3"
        logged = engine.process.log_path.read_text()
        assert f"--served-model-name tiny --host 127.0.0.1 --port {engine.port}" in logged
        assert engine.complete(body)["choices"][0]["message"]["content"] == "fake answer"

        results: list[dict] = []
        worker = threading.Thread(target=lambda: results.append(engine.complete(body)))
        worker.start()
        deadline = time.monotonic() + 5
        while engine.inflight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        assert engine.drain(timeout_s=10) is True
        waited = time.monotonic() - t0
        worker.join()
        assert len(results) == 1 and waited > 0.3  # drain waited for the in-flight request
        with pytest.raises(EngineUnavailableError, match="draining"):
            engine.complete(body)
    finally:
        engine.stop()
    assert not _alive(pids["server"])
    assert not _alive(pids["worker"])  # the fake leaves its worker on SIGTERM; the sweep kills it
    assert not engine.healthy()
