"""Fixtures for the server tests: a real instant engine process, a Runtime over it, and a real
uvicorn server on 127.0.0.1 in a background thread, so every client test goes over TCP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from server_support import make_runtime, serve

from murakkab_lg.runtime import Runtime
from murakkab_lg.server import ServeConfig, create_app

# litellm fetches its price map from the internet at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

@pytest.fixture(scope="module")
def runtime(instant_url: str) -> Iterator[Runtime]:
    rt = make_runtime(instant_url)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def base_url(runtime: Runtime) -> Iterator[str]:
    """A server with auth off and default limits (module-scoped: started once per test file)."""
    with serve(create_app(runtime, ServeConfig(), api_keys=())) as url:
        yield url
