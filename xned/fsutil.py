"""File-system helpers: atomic, durable writes (temp file beside the target, fsync, rename,
fsync of the directory), file digests and the key of a resumable job's inputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from xned.errors import InputError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inputs_key(paths: Iterable[Path], options: Any) -> str:
    """What a resumable job belongs to: ``options`` (JSON-able) and each input file's
    resolved path, size and modification time, hashed; a checkpoint of another key is not
    resumed."""
    parts: list[Any] = [options]
    for p in paths:
        st = Path(p).stat()
        parts.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` through a temp file in its directory: on success the data is fsynced
    and renamed over ``path``; on any error the temp file is removed and ``path`` is as it
    was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".incomplete")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as f:
        f.write(data)


def replace_file(tmp: Path, dest: Path) -> None:
    """Put the finished file ``tmp`` (written by a library that takes a path) in place of
    ``dest`` durably: fsynced, renamed over it, the rename fsynced."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    fsync_dir(Path(dest).parent)


def replace_dir(stage: Path, dest: Path) -> None:
    """Put the finished directory ``stage`` in place of ``dest`` (created or replaced): every
    file under ``stage`` is fsynced, ``dest`` is moved aside, ``stage`` renamed over it, and
    the renames made durable. A crash leaves ``dest`` whole (old or new), never half-written;
    at worst a ``.old`` sibling remains beside it."""
    stage, dest = Path(stage), Path(dest)
    for p in stage.rglob("*"):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(stage)
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(stage, dest)
        fsync_dir(dest.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, dest)
        fsync_dir(dest.parent)


def check_replaceable_dir(path: Path, marker: str, what: str) -> None:
    """Refuse an output directory that a write would clobber: ``path`` may be missing, empty,
    or a directory holding ``marker`` (a previous output of the same kind, e.g. a bundle's
    ``manifest.json``); anything else raises ``InputError`` naming it, before any work."""

    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"{path} exists and is not a directory; give a new or empty directory for the {what}.")
    if any(path.iterdir()) and not (path / marker).is_file():
        raise InputError(
            f"{path} is a directory that does not hold a {what} (no {marker}); it would be replaced. "
            f"Give a new or empty directory, or an existing {what}."
        )
