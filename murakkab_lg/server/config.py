"""The `murakkab serve --config FILE` file: the runtime's config plus how the server protects itself.

The runtime part (deployments, profiles, policy, objective, default, warm, ...) is
`runtime.config.RuntimeConfig`, shared with `Runtime.from_config` and `murakkab profile --config`;
`ServeConfig` adds the server's keys. Every key is optional; an empty file serves the embedded CPU
ladder. Unknown keys are errors.

    # serve.yaml: the runtime keys (see murakkab_lg/runtime/config.py), then:
    api_keys_env: MURAKKAB_API_KEYS    # comma-separated Bearer keys read from this variable
    auth_metrics: false                # true: /metrics needs a key too (when keys are configured)
    auth_docs: false                   # true: /docs, /redoc and /openapi.json need a key too
    body_limit_bytes: 1048576          # larger request bodies get 413
    max_inflight: 256                  # requests served at once ...
    max_queue: 1024                    # ... and waiting; beyond both, 429 with Retry-After
    retry_after_s: 1
    telemetry_records: 10000           # call records kept in memory (metrics count them all)

API keys may also be listed under `api_keys`, but a file is easy to leak: prefer the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field

from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime.config import RuntimeConfig, build_runtime
from murakkab_lg.runtime.config import load_config as _load

__all__ = ("DEFAULT_KEYS_ENV", "MIN_KEY_LENGTH", "ServeConfig", "build_runtime", "load_config")

DEFAULT_KEYS_ENV = "MURAKKAB_API_KEYS"
MIN_KEY_LENGTH = 8


class ServeConfig(RuntimeConfig):
    """The validated config file: the runtime's keys plus the server's (module docstring)."""

    api_keys: list[Annotated[str, Field(min_length=MIN_KEY_LENGTH)]] = Field(default_factory=list)
    api_keys_env: str = DEFAULT_KEYS_ENV
    auth_metrics: bool = False
    auth_docs: bool = False
    body_limit_bytes: Annotated[int, Field(ge=1024)] = 1 << 20
    max_inflight: Annotated[int, Field(ge=1)] = 256
    max_queue: Annotated[int, Field(ge=0)] = 1024
    retry_after_s: Annotated[int, Field(ge=1)] = 1
    telemetry_records: Annotated[int, Field(ge=100)] = 10_000

    def resolved_api_keys(self, extra: list[str] | None = None) -> tuple[str, ...]:
        """Keys from the file, the environment variable and the command line, deduplicated.

        Every source obeys the same minimum length as the file (a short key is guessable), and
        the error names the source and the key's position, never the key itself.
        """
        env = [k.strip() for k in os.environ.get(self.api_keys_env, "").split(",") if k.strip()]
        for source, keys in ((f"${self.api_keys_env}", env), ("--api-key", list(extra or []))):
            for i, key in enumerate(keys, 1):
                if len(key) < MIN_KEY_LENGTH:
                    raise ConfigError(
                        f"API key #{i} from {source} has {len(key)} characters; keys need at least "
                        f"{MIN_KEY_LENGTH}. To fix: use a longer random key, e.g. `python -c \"import secrets; "
                        "print(secrets.token_urlsafe(32))\"`.")
        return tuple(dict.fromkeys([*self.api_keys, *env, *(extra or [])]))


def load_config(path: Path | str | None) -> ServeConfig:
    """Read and validate a server config file; `None` gives the defaults (the embedded ladder)."""
    return _load(path, ServeConfig)
