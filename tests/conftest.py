"""Shared fixtures: the embedded models the tests use must be pulled (CI pulls tiny and small).

A missing model fails the test with the command that fixes it rather than skipping it, so a
green run always means the real engines ran.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from murakkab_lg.catalog.models import embedded_model
from murakkab_lg.catalog.pull import verify
from murakkab_lg.errors import ModelError


def require_model(name: str) -> str:
    try:
        verify(embedded_model(name))
    except ModelError as e:
        pytest.fail(f"{e} (tests need the tiny and small models: `murakkab models pull tiny small`)")
    return embedded_model(name).name


@pytest.fixture(scope="session")
def tiny_model() -> str:
    return require_model("tiny")


@pytest.fixture(scope="session")
def small_model() -> str:
    return require_model("small")


@pytest.fixture(scope="session")
def large_model() -> str:
    return require_model("large")


@pytest.fixture(scope="session")
def instant_url() -> Iterator[str]:
    """A real instant-engine process (murakkab_lg.testing.instant_engine) for the whole session."""
    from murakkab_lg.testing.instant_engine import InstantEngine

    engine = InstantEngine("instant")
    engine.start(30)
    try:
        yield engine.base_url
    finally:
        engine.stop()
