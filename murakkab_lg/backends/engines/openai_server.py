"""Engine kind `openai`: an OpenAI-compatible server that already runs (vLLM, llama.cpp, Ollama, TGI).

The runtime never starts or stops such a server: `start()` waits until it answers `GET /models`
and lists the served model (many servers have no `/health`), `stop()` only closes our connections.
Requests are forwarded through the one OpenAI client with the served model's name in `model`.
"""

from __future__ import annotations

import os
import time

from murakkab_lg.backends.engines.base import HttpEngine
from murakkab_lg.errors import ConfigError, EngineError, EngineStartError
from murakkab_lg.spec import OpenAiServerSettings

__all__ = ("OpenAiServerEngine",)


class OpenAiServerEngine(HttpEngine):
    """One deployment on an existing server; replicas of it share the server."""
    # An existing server may be llama-server (see LlamaCppEngine): correctness before connection reuse.
    close_streamed_connections = True

    api_prefix = ""  # base_url is already the API root (".../v1")

    def __init__(self, name: str, settings: OpenAiServerSettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.served_model = settings.served_model
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise ConfigError(
                    f"deployment {name!r}: api_key_env {settings.api_key_env!r} is not set. To fix: export "
                    f"{settings.api_key_env}=<key for {self.base_url}>, or drop api_key_env if the server needs none.")
            self.api_key = key
        self._up = False

    def start(self, timeout_s: float = 120.0) -> None:
        """Wait until the server answers and serves `served_model`; never starts a process."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while True:
            try:
                served = self.api.models(timeout_s=min(5.0, max(0.5, timeout_s)))
                break
            except EngineError as e:
                last = e
                if getattr(e, "status_code", None) in (401, 403, 404) or time.monotonic() >= deadline:
                    raise EngineStartError(
                        f"deployment {self.name!r}: the OpenAI-compatible server at {self.base_url} is not "
                        f"reachable ({last}). To fix: start that server (murakkab does not start `openai` "
                        "deployments), or correct base_url (the API root as the openai SDK takes it, usually "
                        "ending in /v1) and api_key_env.") from None
                time.sleep(0.2)
        if served and self.settings.served_model not in served:
            raise EngineStartError(
                f"deployment {self.name!r}: {self.base_url} does not serve {self.settings.served_model!r}; it "
                f"serves {', '.join(served)}. To fix: set served_model to one of these.")
        self._up = True

    def stop(self) -> None:
        self._up = False
        self._close_clients()

    def healthy(self) -> bool:
        """Started (not stopped) and the server answers `GET /models`."""
        if not self._up:
            return False
        try:
            self.api.models(timeout_s=2.0)
        except EngineError:
            return False
        return True
