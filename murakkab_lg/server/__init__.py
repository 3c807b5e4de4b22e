"""The OpenAI-compatible HTTP endpoint over a Runtime (`murakkab serve`); see docs/server.md."""

from murakkab_lg.server.app import create_app
from murakkab_lg.server.config import ServeConfig, build_runtime, load_config

__all__ = ("ServeConfig", "build_runtime", "create_app", "load_config")
