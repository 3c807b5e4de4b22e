"""vLLM's OpenAI server as a managed child process (the GPU engine; vllm-cpu for CPU tests).

Why a child process with its own python: vLLM pins its own torch build, so it often lives in a
separate venv (scripts/setup_vllm_cpu.sh makes one for vllm-cpu). MURAKKAB_VLLM_PYTHON names
that venv's python; otherwise the current interpreter must have the `vllm` extra. We start
`python -m vllm.entrypoints.openai.api_server` rather than the `vllm` console script, which
failed to start under vllm-cpu 0.32.0.

vLLM forks worker processes (its engine core, one per TP rank), so stopping it sweeps the whole
process tree: SIGTERM lets vLLM shut its workers down, and anything still alive afterwards is
killed, so a stopped deployment leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import cache
from pathlib import Path

from murakkab_lg.backends.engines._process import ChildProcess, cpu_seconds_of, start_time_of
from murakkab_lg.backends.engines.base import Body
from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.backends.engines.process_engine import ProcessEngine
from murakkab_lg.catalog.pull import cache_dir
from murakkab_lg.errors import EngineNotFoundError, EngineStartError, EngineUnavailableError, ModelError
from murakkab_lg.spec import Placement, VllmSettings

__all__ = (
    "ENV_PYTHON",
    "VllmEngine",
    "build_argv",
    "build_env",
    "cuda_visible_devices",
    "find_vllm_python",
    "resolve_model",
)

ENV_PYTHON = "MURAKKAB_VLLM_PYTHON"
_ENTRYPOINT = "vllm.entrypoints.openai.api_server"
_INSTALL_HINT = (
    "`pip install 'murakkab-lg[vllm]'` on a GPU host, or on a CPU machine run "
    f"`bash scripts/setup_vllm_cpu.sh` and set {ENV_PYTHON}=<that venv>/bin/python"
)


@cache
def _has_vllm(python: str) -> bool:
    """Whether `python` can import vllm, asked without importing it (import takes seconds)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_vllm_python() -> Path:
    """The python that runs vLLM: $MURAKKAB_VLLM_PYTHON, else this interpreter if it has vllm."""
    override = os.environ.get(ENV_PYTHON)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineNotFoundError(
                f"{ENV_PYTHON}={override} is not an executable python. To fix: point it at the python of "
                f"a venv with vllm (e.g. .venv-vllm/bin/python after scripts/setup_vllm_cpu.sh), or unset it."
            )
        if not _has_vllm(str(path)):
            raise EngineNotFoundError(f"{ENV_PYTHON}={override} cannot import vllm. To fix: {_INSTALL_HINT}.")
        return path
    if _has_vllm(sys.executable):
        return Path(sys.executable)
    raise EngineNotFoundError(f"vLLM is not installed for {sys.executable}. To fix: {_INSTALL_HINT}.")


def resolve_model(model: str) -> str:
    """A local model directory (checked now, not minutes into vLLM's start) or a hub repo id.

    Anything that looks like a path must exist; a bare name that is neither a directory nor an
    `org/name` repo id is refused, since vLLM would only fail on it after loading torch.
    """
    path = Path(model).expanduser()
    looks_like_path = model.startswith(("/", ".", "~")) or path.exists()
    if looks_like_path:
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelError(
                    f"model directory {path} has no config.json, so vLLM cannot load it. To fix: point the "
                    "deployment at a Hugging Face model directory (scripts/setup_vllm_cpu.sh converts the "
                    "embedded GGUF into one)."
                )
            return str(path.resolve())
        if path.is_file():
            return str(path.resolve())  # a single-file model (GGUF on GPU builds of vLLM)
        raise ModelError(
            f"model path {path} does not exist. To fix: check the deployment's model, or create the "
            "directory (for the embedded model: `bash scripts/setup_vllm_cpu.sh`)."
        )
    if model.count("/") == 1 and all(model.split("/")):
        return model
    raise ModelError(
        f"model {model!r} is neither a local directory nor a Hugging Face repo id (org/name). To fix: "
        "give the deployment a model directory or a repo id that vLLM can load."
    )


def build_argv(python: Path | str, model: str, settings: VllmSettings, *, port: int, served_name: str,
               host: str = "127.0.0.1") -> list[str]:
    """The exact vLLM command line for one replica."""
    argv = [
        str(python), "-m", _ENTRYPOINT,
        "--model", model,
        "--served-model-name", served_name,
        "--host", host, "--port", str(port),
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--max-num-seqs", str(settings.max_num_seqs),
        "--gpu-memory-utilization", f"{settings.gpu_memory_utilization:g}",
    ]
    if settings.quantization:
        argv += ["--quantization", settings.quantization]
    if settings.max_model_len is not None:
        argv += ["--max-model-len", str(settings.max_model_len)]
    return argv


def cuda_visible_devices(placement: Placement, tensor_parallel_size: int, replica: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for `replica`: its entry in the placement, or its slice of `gpus`; None on CPU."""
    if placement.cuda_visible_devices:
        try:
            return placement.cuda_visible_devices[replica]
        except IndexError:
            raise EngineStartError(
                f"placement lists CUDA devices for {len(placement.cuda_visible_devices)} replica(s), not for "
                f"replica {replica}. To fix: re-run the placement for this deployment's replica count."
            ) from None
    if not placement.gpus:
        return None
    gpus = placement.gpus[replica * tensor_parallel_size:(replica + 1) * tensor_parallel_size]
    if len(gpus) != tensor_parallel_size:
        raise EngineStartError(
            f"placement gives GPUs {placement.gpus} but replica {replica} needs {tensor_parallel_size} of them "
            "(tensor_parallel_size). To fix: place the deployment with runtime.placement.place()."
        )
    return ",".join(str(g) for g in gpus)


def build_env(base: dict[str, str], visible: str | None, *, local_model: bool) -> dict[str, str]:
    """The engine's environment: its GPUs, no telemetry calls home, no hub lookups for local models."""
    env = dict(base)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # so CUDA's indices are NVML's (and nvidia-smi's)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if local_model:
        env.setdefault("HF_HUB_OFFLINE", "1")
    return env


_ERROR_LINE = re.compile(r"\b(\w+(?:Error|Exception)): (.+)$")


def _root_causes(log_path: Path, limit: int = 3) -> str:
    """The exception messages in a vLLM log, first seen first: the root cause is raised in a worker
    process and printed long before the tail, which only says 'Engine core initialization failed'."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    found: dict[str, None] = {}
    for line in text.splitlines():
        m = None if " WARNING " in line else _ERROR_LINE.search(line)
        if m:
            found.setdefault(f"{m.group(1)}: {m.group(2).strip()}")
    if not found:
        return ""
    return "Errors in the log:\n" + "\n".join(f"  {e}" for e in list(found)[:limit]) + "\n"


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc (empty where /proc is missing)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_bytes()
            ppid = int(raw[raw.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class VllmEngine(ProcessEngine):
    """One vLLM replica: start, health, drain, stop; requests go through HttpEngine."""

    def __init__(self, name: str, model: str, settings: VllmSettings, *, placement: Placement | None = None,
                 replica: int = 0, python: Path | None = None) -> None:
        super().__init__(name)
        self.model = model
        self.settings = settings
        self.placement = placement if placement is not None else Placement()
        self.replica = replica
        self._python = python
        self.process: ChildProcess | None = None
        self.port: int | None = None
        self._inflight = 0
        self._cond = threading.Condition()
        self._draining = False
        # Descendants seen so far (they outlive a killed parent), with their start times: a PID is
        # signalled later only if it still names the same process (PIDs are reused).
        self._workers: dict[int, int | None] = {}

    @property
    def gpus(self) -> tuple[int, ...]:
        """Physical GPUs of this replica (for measured energy); empty on CPU."""
        tp = self.settings.tensor_parallel_size
        return self.placement.gpus[self.replica * tp:(self.replica + 1) * tp]

    def argv(self, port: int) -> list[str]:
        python = self._python or find_vllm_python()
        return build_argv(python, resolve_model(self.model), self.settings, port=port, served_name=self.name,
                          host=self.bind_host)

    def start(self, timeout_s: float = 600.0) -> None:
        if self.process is not None and self.process.alive():
            return
        visible = cuda_visible_devices(self.placement, self.settings.tensor_parallel_size, self.replica)
        model = resolve_model(self.model)  # fail on a bad path before looking for vllm
        self.port = free_port()
        argv = self.argv(self.port)
        self.base_url = f"http://{self.bind_host}:{self.port}"
        self._close_clients()
        self._draining = False
        env = build_env(dict(os.environ), visible, local_model=Path(model).exists())
        log_path = cache_dir() / "logs" / f"vllm-{self.name}-{self.port}.log"
        self.process = ChildProcess(argv, log_path=log_path, env=env)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        process = self.process
        if self._await_health(timeout_s, interval_s=0.5,
                              each_poll=lambda: self._remember(process.pid)):
            return
        if not process.alive():
            code = process.returncode()
            self._sweep()
            raise EngineStartError(
                f"vLLM for {self.name!r} exited with code {code} before it was ready. "
                f"{_root_causes(process.log_path)}Log tail ({process.log_path}):\n"
                f"{process.log_tail(15)}"
            )
        tail = process.log_tail(30)
        self.stop(drain_timeout_s=0)
        raise EngineStartError(
            f"vLLM for {self.name!r} was not ready within {timeout_s:.0f} s. To fix: raise the start timeout "
            f"(a cold vLLM start takes minutes) or read the log ({process.log_path}):\n{tail}"
        )

    def cpu_seconds(self) -> float | None:
        """CPU time of vLLM's whole process tree: on vllm-cpu the work happens in its engine-core child."""
        if self.process is None:
            return None
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            total += cpu_seconds_of(pid) or 0.0
        return total

    # -- in-flight accounting, so drain can wait for running requests -------------------------
    def _enter(self) -> None:
        with self._cond:
            if self._draining:
                raise EngineUnavailableError(f"engine {self.name!r} is draining and takes no new requests")
            self._inflight += 1

    def _exit(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def draining(self) -> bool:
        """True once `drain` began: the runtime's ReplicaPool.pick sends this replica nothing new."""
        return self._draining

    def complete(self, body: Body) -> Body:
        self._enter()
        try:
            return super().complete(body)
        finally:
            self._exit()

    async def acomplete(self, body: Body) -> Body:
        self._enter()
        try:
            return await super().acomplete(body)
        finally:
            self._exit()

    def stream(self, body: Body) -> Iterator[Body]:
        self._enter()
        try:
            yield from super().stream(body)
        finally:
            self._exit()

    async def astream(self, body: Body) -> AsyncIterator[Body]:
        self._enter()
        try:
            async for chunk in super().astream(body):
                yield chunk
        finally:
            self._exit()

    async def astream_batches(self, body: Body) -> AsyncIterator[Sequence[Body]]:
        self._enter()
        try:
            async for batch in self._api_batches(body):
                yield batch
        finally:
            self._exit()

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Refuse new requests and wait for those in flight; True if all finished in time."""
        with self._cond:
            self._draining = True
            return self._cond.wait_for(lambda: self._inflight == 0, timeout=timeout_s)

    def _sweep(self) -> None:
        """Kill whatever is left of vLLM's process tree (workers whose parent is gone)."""
        if self.process is not None and self.process.alive():
            self._remember(self.process.pid)
        for pid, started in self._workers.items():
            if started is None or start_time_of(pid) != started:
                continue  # gone, or the PID now belongs to another process: never signal it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._workers.clear()

    def _remember(self, pid: int) -> None:
        for child in _children(pid):
            if child not in self._workers:
                self._workers[child] = start_time_of(child)

    def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Drain (wait for in-flight requests), SIGTERM vLLM, then kill any worker left over."""
        if self.process is not None and self.process.alive() and drain_timeout_s > 0:
            self.drain(drain_timeout_s)
        self._close_clients()
        if self.process is not None:
            if self.process.alive():
                self._remember(self.process.pid)
            self.process.stop(timeout_s=30.0)
            self._sweep()
