"""Every command that writes a bundle does it as one transaction under one lock.

``bundle_transaction(bundle)`` yields a staging directory beside the bundle holding a
hard-linked copy of it (writers replace files, never edit them in place); on success the
staging directory is swapped in for the bundle, on any failure (or kill) the bundle is as it
was and the next writer removes what the dead one left. ``kb build``, ``kb index``, ``kb add``,
``kb compact`` and ``nil promote`` take it, so a second writer is refused with the holder's PID
instead of losing its change or the first one's.

``scratch_dir(dest)`` is the temporary space of a build: a folder beside its output, not in
``$TMPDIR``, so a killed build's spilled runs are removed by the next build of the same output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from xned.engine import layout as L
from xned.errors import InputError, KBBuildError
from xned.fsutil import atomic_write_text, fsync_dir


@contextmanager
def bundle_lock(bundle: Path) -> Iterator[None]:
    """The writers' lock of ``bundle`` (``.NAME.lock`` beside it, with the holder's PID in
    ``.NAME.writer``); ``KBBuildError`` naming the holder when another process has it."""

    bundle = Path(bundle).absolute()
    bundle.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(bundle.parent / f".{bundle.name}.lock"), is_singleton=False)
    who = bundle.parent / f".{bundle.name}.writer"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = who.read_text(encoding="ascii", errors="replace").strip() or "?"
        except OSError:
            holder = "?"
        raise KBBuildError(
            f"Bundle {bundle} is being written by PID {holder} (kb build, index, add or compact); "
            f"wait for it to finish."
        ) from None
    try:
        atomic_write_text(who, f"{os.getpid()}\n")
        yield
    finally:
        who.unlink(missing_ok=True)
        lock.release()


@contextmanager
def bundle_transaction(bundle: Path, *, create: bool = True) -> Iterator[Path]:
    """Change ``bundle`` as one transaction (see the module docstring); yields the staging
    directory to write into. ``create=False``: the bundle must exist already."""
    bundle = Path(bundle).absolute()
    parent = bundle.parent
    if not create and not (bundle / L.MANIFEST).is_file():
        raise InputError(f"{bundle} is not a bundle (no manifest.json); give a bundle directory.")
    with bundle_lock(bundle):
        old = parent / f".{bundle.name}.old"
        if not bundle.exists() and old.is_dir():  # a swap interrupted between its two renames
            old.rename(bundle)
        shutil.rmtree(old, ignore_errors=True)
        stage = parent / f".{bundle.name}.staging"
        shutil.rmtree(stage, ignore_errors=True)  # left by a writer that died
        if bundle.is_dir():
            shutil.copytree(bundle, stage, copy_function=os.link, symlinks=True)
        else:
            stage.mkdir()
        try:
            yield stage
            if bundle.exists():
                bundle.rename(old)
            stage.rename(bundle)
            fsync_dir(parent)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


@contextmanager
def scratch_dir(dest: Path) -> Iterator[Path]:
    """A fresh, empty ``.NAME.scratch`` beside ``dest`` (a stale one of a killed build is
    removed first), removed again at the end."""
    dest = Path(dest).absolute()
    scratch = dest.parent / f".{dest.name}.scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
