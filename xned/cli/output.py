"""Output of ``xned link``: one writer per format, and an output file that survives a crash.

``-o OUT`` writes to ``OUT.partial``; every few seconds the file is flushed and fsynced and
``OUT.partial.json`` records how many input documents and bytes it holds (written
atomically after the data, so it never claims more than is on disk). A finished run fsyncs
and renames ``OUT.partial`` to ``OUT``. A killed run leaves both files: ``--resume`` cuts
``OUT.partial`` back to the recorded size and skips that many input documents, so the
final output holds every input document exactly once, in order. An advisory lock on
``OUT.partial`` stops two runs from writing the same output.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import IO, Any

from xned.errors import InputError
from xned.fsutil import atomic_write_text, fsync_dir
from xned.records import doc_record
from xned.types import DocResult

CHECKPOINT_SECONDS = 2.0


def _tsv(s: str | None) -> str:
    return "" if s is None else s.replace("\t", " ").replace("\n", " ").replace("\r", " ")


class Writer:
    """Renders results of one format; ``index`` is the 0-based record number."""

    def __init__(self, fmt: str, candidates: bool, to_terminal: bool = False):
        self.fmt = fmt
        self.candidates = candidates
        self.to_terminal = to_terminal

    def header(self) -> str:
        return {"tsv": "doc_id\tstart\tend\tmention\tqid\tlabel\tscore\n", "json": "["}.get(self.fmt, "")

    def footer(self, count: int) -> str:
        return "\n]\n" if self.fmt == "json" else ""

    def record(self, res: DocResult, index: int) -> str:
        out = self._record(res, index)
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:  # never stop a run on one record: escape what is not text
            out = out.encode("utf-8", "backslashreplace").decode("utf-8")
        return out

    def _record(self, res: DocResult, index: int) -> str:
        if self.fmt == "jsonl":
            return json.dumps(doc_record(res, self.candidates), ensure_ascii=False) + "\n"
        if self.fmt == "json":
            body = json.dumps(doc_record(res, self.candidates), ensure_ascii=False, indent=2)
            return ("," if index else "") + "\n" + body
        if self.fmt == "tsv":
            doc_id = _tsv(res.id)
            if res.error:
                return f"{doc_id}\t\t\t\tERROR\t{_tsv(res.error)}\t\n"
            rows = (
                (doc_id, lk.start, lk.end, _tsv(lk.text), lk.qid or "NIL", _tsv(lk.label), f"{lk.score:.4f}")
                for lk in res.links
            )
            return "".join("\t".join(map(str, row)) + "\n" for row in rows)
        return render_pretty(res, self.to_terminal)


def render_pretty(res: DocResult, to_terminal: bool) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=to_terminal, width=None if to_terminal else 120, highlight=False)
    if not to_terminal:
        console.width = 120
    head = f"[{res.id}] " if res.id else ""
    if res.error:
        console.print(Text(f"{head}error: {res.error}", style="red"))
        return buf.getvalue()
    text = Text(res.text)
    for lk in res.links:
        text.stylize("bold green" if lk.qid else "dim underline", lk.start, lk.end)
    if head:
        console.print(Text(head, style="bold"), end="")
    console.print(text)
    if not res.links:
        console.print(Text("  (no entities found)", style="dim"))
        return buf.getvalue()
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("mention", "span", "qid", "label", "score", "description"):
        table.add_column(col, overflow="fold")
    for lk in res.links:
        table.add_row(
            lk.text,
            f"{lk.start}-{lk.end}",
            lk.qid or "NIL",
            lk.label or "",
            f"{lk.score:.2f}",
            (lk.description or "")[:60],
        )
    console.print(table)
    console.print()
    return buf.getvalue()


def check_output(path: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an output path that would destroy something: the input itself, a directory,
    a device, a FIFO or a socket, or a symlink (unless ``force``, which still never
    allows the input or a directory)."""
    for side in sidecars(path):
        for src in inputs:
            if _same_file(src, side):
                raise InputError(
                    f"The input {src} is {side.name}, the file xned link -o {path} writes as it goes; "
                    f"give another -o path, or rename the input first."
                )
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    for src in inputs:
        if _same_file(src, path):
            raise InputError(f"Output {path} is the input file; give another -o path.")
    if stat.S_ISDIR(st.st_mode) or path.is_dir():
        raise InputError(f"Output path {path} is a directory; give a file name.")
    kinds = {stat.S_ISLNK: "a symlink", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    kinds[stat.S_ISSOCK] = "a socket"
    for test, what in kinds.items():
        if test(st.st_mode) and not force:
            raise InputError(
                f"Output path {path} is {what}; -o replaces it with a regular file. "
                f"Pass --force to do that, or write to stdout and redirect."
            )


def sidecars(path: Path) -> tuple[Path, Path]:
    """``OUT.partial`` and ``OUT.partial.json``: what ``-o OUT`` writes before ``OUT``."""
    return path.with_name(path.name + ".partial"), path.with_name(path.name + ".partial.json")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


class CheckpointedOutput:
    """``OUT.partial`` + ``OUT.partial.json``, renamed to ``OUT`` by ``finish``."""

    def __init__(self, path: Path, signature: dict[str, Any]):
        self.path = Path(path)
        self.partial, self.meta = sidecars(self.path)
        self.signature = signature
        self.records = 0
        self._file: IO[bytes] | None = None
        self._lock: Any = None
        self._last = time.monotonic()

    def open(self, resume: bool, force: bool) -> int:
        """Open for writing; returns how many input documents the output already holds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.incomplete"):
            stale.unlink(missing_ok=True)  # temp files of dead runs of older versions
        # one writer per output (filelock: every platform xned declares), on a hidden sidecar
        from filelock import FileLock, Timeout

        self._lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")), is_singleton=False)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            self._lock = None
            raise InputError(f"Another xned link is writing {self.path} (lock on {self.partial}).") from None
        try:
            self._open_partial()
            return self._resume_or_start(resume, force)
        except BaseException:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            Path(self._lock.lock_file).unlink(missing_ok=True)  # the output is done with: no file left
            self._lock.release()
            self._lock = None

    def _open_partial(self) -> None:
        """Open ``OUT.partial``: never through a symlink (one planted there would make -o
        write outside the output's directory), and only a regular file."""
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | nofollow, 0o644)
        except OSError as exc:
            if os.path.islink(self.partial):
                raise InputError(
                    f"{self.partial} is a symlink; xned link -o writes there and never follows one. Remove it."
                ) from None
            raise InputError(f"Cannot write {self.partial}: {exc.strerror}.") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"{self.partial} is not a regular file; remove it or give another -o path.")
        self._file = os.fdopen(fd, "r+b")

    def _resume_or_start(self, resume: bool, force: bool) -> int:
        assert self._file is not None
        state = self._read_meta()
        size = os.fstat(self._file.fileno()).st_size
        if resume:
            if state is None:
                if size:
                    raise InputError(f"{self.partial} has no checkpoint record ({self.meta}); it cannot be resumed.")
                state = {"records": 0, "bytes": 0, "signature": self.signature}
            diff = sorted(k for k in set(state["signature"]) | set(self.signature)
                          if state["signature"].get(k) != self.signature.get(k))  # fmt: skip
            if diff:
                raise InputError(
                    f"Cannot resume {self.path}: the interrupted run used other options ({', '.join(diff)}). "
                    f"Run again with the same options, or without --resume (and --force) to start over."
                )
            self._file.truncate(int(state["bytes"]))
            self._file.seek(0, os.SEEK_END)
            self.records = int(state["records"])
            return self.records
        if (size or state is not None) and not force:
            held = f" ({state['records']} documents)" if state else ""
            raise InputError(
                f"{self.partial} holds an interrupted run{held}: continue it with --resume, or start over with --force."
            )
        self._file.truncate(0)
        self._file.seek(0)
        self._write_meta()
        return 0

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not {"records", "bytes", "signature"} <= set(data):
                raise ValueError("missing fields")
            return data
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise InputError(f"Checkpoint {self.meta} is unreadable ({exc}); remove it and --force.") from None

    def _write_meta(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        data = {"records": self.records, "bytes": self._file.tell(), "signature": self.signature, "pid": os.getpid()}
        atomic_write_text(self.meta, json.dumps(data, sort_keys=True) + "\n")

    def write(self, text: str, records_done: int) -> None:
        """Append ``text``; ``records_done`` input documents are then fully written."""
        assert self._file is not None
        self._file.write(text.encode("utf-8"))
        self.records = records_done
        now = time.monotonic()
        if now - self._last >= CHECKPOINT_SECONDS:
            self._write_meta()
            self._last = now

    def finish(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        os.replace(self.partial, self.path)
        self.meta.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self._file.close()
        self._file = None
        self._unlock()

    def suspend(self) -> None:
        """Keep what is written for ``--resume`` (the run stopped)."""
        if self._file is not None:
            try:
                self._write_meta()
            finally:
                self._file.close()
                self._file = None
                self._unlock()
            print(f"Partial output kept in {self.partial}; continue with --resume.", file=sys.stderr)
