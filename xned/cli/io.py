"""Small output helper for commands that write one result file (``xned eval --json``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from xned.errors import InputError
from xned.fsutil import atomic_file


@contextmanager
def output_stream(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or ``path`` written atomically (temp file, fsync, rename) on success."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"Output path {path} is a directory; give a file name.")
    with atomic_file(path) as f:
        yield f
