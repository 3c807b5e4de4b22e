"""Profiles on disk and in memory: the store a runtime plans from, and the profile file I/O.

The row types (`DeploymentProfile`, `LoadPoint`, `Provenance`, `QualityScore`, `ProfileFile`)
live at the spec level in `murakkab_lg.profile_spec`, so that policies can use them without
importing the catalog; they are re-exported here so `catalog.profiles` stays the one import for
code that loads profiles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from murakkab_lg.errors import ConfigError
from murakkab_lg.profile_spec import (
    SCHEMA_VERSION,
    DeploymentProfile,
    LoadPoint,
    ProfileFile,
    Provenance,
    QualityScore,
)

__all__ = (
    "SCHEMA_VERSION",
    "DeploymentProfile",
    "LoadPoint",
    "ProfileFile",
    "ProfileStore",
    "Provenance",
    "QualityScore",
    "read_profile_file",
    "write_profile_file",
)


class ProfileStore:
    """Profiles by deployment name; later sources override earlier ones (measured over shipped)."""

    def __init__(self, profiles: Iterable[DeploymentProfile] = (), source: str = "") -> None:
        self._rows: dict[str, DeploymentProfile] = {}
        self._source_of: dict[str, str] = {}
        self.sources: list[str] = []
        self.add(profiles, source)

    def add(self, profiles: Iterable[DeploymentProfile], source: str = "") -> None:
        for p in profiles:
            self._rows[p.deployment] = p
            self._source_of[p.deployment] = source or p.provenance.describe()
        if source:
            self.sources.append(source)

    @classmethod
    def load(cls, *paths: Path | str) -> ProfileStore:
        store = cls()
        for path in paths:
            store.add(read_profile_file(path).profiles, str(path))
        return store

    def get(self, deployment: str) -> DeploymentProfile | None:
        return self._rows.get(deployment)

    def source_of(self, deployment: str) -> str | None:
        """The source (as passed to `add`) whose row is in effect for `deployment`."""
        return self._source_of.get(deployment)

    def __contains__(self, deployment: str) -> bool:
        return deployment in self._rows

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)


def read_profile_file(path: Path | str) -> ProfileFile:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read profile file {path}: {e}") from None
    try:
        return ProfileFile.model_validate(data)
    except ValueError as e:
        raise ConfigError(f"profile file {path} is invalid: {e}") from None


def write_profile_file(path: Path | str, profile_file: ProfileFile) -> None:
    Path(path).write_text(profile_file.model_dump_json(indent=1) + "\n")
