"""Reading documents (argument, file, stdin; plain lines or canonical JSONL) and writing
results atomically."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from xned.errors import InputError
from xned.types import DocResult, Link


class BadLine:
    """A line that could not be read as a document; linked as an error, never dropped."""

    def __init__(self, id: str, error: str):
        self.id = id
        self.error = error


def read_documents(stream: IO[bytes], fmt: str, name: str) -> Iterator[dict[str, Any] | BadLine]:
    """Yield canonical dicts (``id``, ``text``, ``lang``, ``mentions``) per non-empty line.

    ``fmt`` is ``text`` (one document per line), ``jsonl`` or ``auto`` (JSONL when the
    first non-empty line is a JSON object).
    """
    mode = fmt
    for lineno, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        doc_id = f"{name}:{lineno}"
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield BadLine(
                doc_id,
                f"{doc_id}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                f"{exc.start}); re-encode the input as UTF-8",
            )
            continue
        if mode == "auto":
            mode = "jsonl" if line.lstrip().startswith("{") else "text"
        if mode == "text":
            yield {"id": doc_id, "text": line}
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadLine(doc_id, f"{doc_id}: malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            yield BadLine(doc_id, f'{doc_id}: a JSONL document must be an object with a "text" string')
            continue
        obj.setdefault("id", doc_id)
        yield obj


def link_record(link: Link, with_cands: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "start": link.start,
        "end": link.end,
        "text": link.text,
        "qid": link.qid,
        "label": link.label,
        "score": link.score,
        "prior": link.prior,
    }
    if with_cands:
        rec["candidates"] = [
            {
                "qid": c.qid,
                "label": c.label,
                "score": c.score,
                "prior": c.prior,
                "similarity": c.similarity,
                "expert": c.expert,
            }
            for c in link.candidates
        ]
    return rec


def doc_record(res: DocResult, with_cands: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": res.id,
        "lang": res.lang,
        "text": res.text,
        "mentions": [link_record(lk, with_cands) for lk in res.links],
    }
    if res.error is not None:
        rec["error"] = res.error
    return rec


@contextmanager
def output_stream(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temp file beside ``path`` renamed over it on success."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"Output path {path} is a directory; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".incomplete")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
