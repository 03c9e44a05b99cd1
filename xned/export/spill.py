"""External sorting for builds larger than memory: text records are buffered, sorted and
written to run files of at most ``run_records`` lines; ``merged()`` streams every record
in sorted order (``heapq.merge`` over the runs). A build's memory is then bounded by the
run size, whatever the size of the dump.

Records are single lines without control characters; fields are tab-separated and every
field but the last has a fixed width or is followed by a tab, so plain string order is the
order of the field tuples (a tab sorts before every printable character).
"""

from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

RUN_RECORDS = 1_000_000
MAX_FANIN = 128  # runs merged at once; more are first merged in groups (fewer open files)


class Spill:
    def __init__(self, name: str, *, run_records: int = RUN_RECORDS, tmp_dir: Path | None = None):
        self.name = name
        self.run_records = max(1, run_records)
        self._tmp_root = tmp_dir
        self._dir: Path | None = None
        self.buf: list[str] = []
        self.runs: list[Path] = []
        self.total = 0
        self._merges = 0

    def __len__(self) -> int:
        return self.total

    def add(self, line: str) -> None:
        self.buf.append(line)
        self.total += 1
        if len(self.buf) >= self.run_records:
            self._flush()

    def adopt(self, runs: list[Path], total: int) -> None:
        """Take over sorted run files written by another ``Spill`` (a shard of a build read
        elsewhere, see ``kb.shards``); they are merged with this one's but not deleted."""
        self.runs.extend(Path(p) for p in runs)
        self.total += total

    def finish(self) -> list[Path]:
        """Write the buffer out as a run and hand over the run files (the caller owns them
        from now on: ``close`` no longer deletes them)."""
        self._flush()
        runs, self.runs, self._dir = self.runs, [], None
        return runs

    def _flush(self) -> None:
        if not self.buf:
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"xned-{self.name}-", dir=self._tmp_root))
        self.buf.sort()
        path = self._dir / f"run{len(self.runs):05d}"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for line in self.buf:
                f.write(line)
                f.write("\n")
        self.runs.append(path)
        self.buf = []

    def merged(self) -> Iterator[str]:
        """Every record in sorted order (without the newline). Can be called again."""
        if not self.runs:
            yield from sorted(self.buf)
            return
        self._flush()
        while len(self.runs) > MAX_FANIN:
            self._cascade()
        with ExitStack() as stack:
            files = [stack.enter_context(open(p, encoding="utf-8", newline="\n")) for p in self.runs]
            for line in heapq.merge(*files):
                yield line[:-1]

    def sorted_runs(self) -> list[Path]:
        """Every record written out, in at most ``MAX_FANIN`` sorted run files, for readers
        in other processes (``merged_section``); this spill still owns and deletes them."""
        self._flush()
        while len(self.runs) > MAX_FANIN:
            self._cascade()
        return list(self.runs)

    def _cascade(self) -> None:
        """Merge the runs in groups of ``MAX_FANIN`` into longer runs (one pass)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"xned-{self.name}-", dir=self._tmp_root))
        merged: list[Path] = []
        for g in range(0, len(self.runs), MAX_FANIN):
            group = self.runs[g : g + MAX_FANIN]
            if len(group) == 1:
                merged.append(group[0])
                continue
            self._merges += 1
            out = self._dir / f"merge{self._merges:07d}"
            with ExitStack() as stack, open(out, "w", encoding="utf-8", newline="\n") as f:
                files = [stack.enter_context(open(p, encoding="utf-8", newline="\n")) for p in group]
                f.writelines(heapq.merge(*files))
            for p in group:
                if p.parent == self._dir:  # adopted runs belong to their shard
                    p.unlink()
            merged.append(out)
        self.runs = merged

    def close(self) -> None:
        self.buf = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.runs = []


def _first_at_or_after(f: BinaryIO, key: bytes, size: int) -> int:
    """Byte offset of the first line >= ``key`` in a file of sorted lines (``size`` if
    none), by bisection over byte offsets: O(log size) reads, as ``look(1)`` does."""

    def line_after(p: int) -> tuple[int, bytes]:  # the first line that starts at p or later
        f.seek(max(p - 1, 0))
        if p > 0:
            f.readline()
        start = f.tell()
        return start, f.readline()

    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        _, line = line_after(mid)
        if not line or line >= key:
            hi = mid
        else:
            lo = mid + 1
    return line_after(lo)[0]


def sections(runs: list[Path]) -> dict[str, int]:
    """The first fields of the records in sorted ``runs`` and their bytes, found by
    bisection (no full read)."""
    out: dict[str, int] = {}
    for path in runs:
        size = path.stat().st_size
        with open(path, "rb") as f:
            at = 0
            while at < size:
                f.seek(at)
                field = f.readline().split(b"\t", 1)[0]
                end = _first_at_or_after(f, field + b"\n", size)  # "\n" sorts after "\t"
                name = field.decode("utf-8")
                out[name] = out.get(name, 0) + end - at
                at = end
    return dict(sorted(out.items()))


def merged_section(runs: list[Path], field: str) -> Iterator[str]:
    """The records of sorted ``runs`` whose first field is ``field``, in sorted order."""
    prefix = field.encode("utf-8") + b"\t"

    def lines(path: Path) -> Iterator[str]:
        with open(path, "rb") as f:
            f.seek(_first_at_or_after(f, prefix, path.stat().st_size))
            for raw in f:
                if not raw.startswith(prefix):
                    return
                yield raw[:-1].decode("utf-8")

    return heapq.merge(*(lines(p) for p in runs))


def grouped(lines: Iterator[str], n_fields: int) -> Iterator[tuple[tuple[str, ...], list[list[str]]]]:
    """Group sorted records by their first ``n_fields`` fields: (key fields, [rest fields])."""
    split = (line.split("\t") for line in lines)
    for key, rows in itertools.groupby(split, key=lambda r: tuple(r[:n_fields])):
        yield key, [r[n_fields:] for r in rows]
