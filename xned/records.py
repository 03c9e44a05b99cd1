"""Input documents and output records, shared by the CLI, the worker pool, the benchmark and
distributed engines.

Input: one document per line, plain text or canonical JSONL (``{"id", "lang", "text",
"mentions"?}``). A UTF-8 byte-order mark is dropped; UTF-16 and UTF-32 input (recognised by
its byte-order mark) is decoded. A line that cannot be read becomes a pre-errored
``DocResult`` that keeps the user's ``id`` where it is readable and the line number: it
travels through the pipeline in its place, so the output has exactly one record per input
line that is not blank.

Output: ``doc_record`` is the canonical document shape with each mention's decision.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from xned import jsonio
from xned.config import MAX_DOCUMENT_LINE_BYTES
from xned.types import DocResult, Link

#: A single input line longer than this is refused (bounded reads).

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass
class ReadProgress:
    """Bytes consumed so far (of the encoded input), for progress and ETA."""

    bytes: int = 0


def _lines(stream: IO[bytes], progress: ReadProgress) -> Iterator[bytes]:
    """Raw UTF-8 lines of ``stream`` with the byte-order mark handled."""
    head = stream.read(4)
    progress.bytes += len(head)
    enc = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if enc is None or enc == "utf-8":
        skip = len(codecs.BOM_UTF8) if enc else 0
        yield from _chain(head[skip:], stream, progress)
        return
    bom = next(b for b, name in _BOMS if name == enc)
    reader = codecs.getincrementaldecoder(enc)(errors="replace")
    buf = reader.decode(head[len(bom) :])
    while True:
        block = stream.read(1 << 16)
        progress.bytes += len(block)
        buf += reader.decode(block, final=not block)
        *done, buf = buf.split("\n")
        for line in done:
            yield (line + "\n").encode("utf-8", "surrogatepass")
        if not block:
            break
    if buf:
        yield buf.encode("utf-8", "surrogatepass")


def _chain(head: bytes, stream: IO[bytes], progress: ReadProgress) -> Iterator[bytes]:
    """Lines of ``head`` (bytes already read) followed by the rest of ``stream``; a line over
    ``MAX_DOCUMENT_LINE_BYTES`` is cut there and the rest of it skipped without being held."""
    pending = head
    while True:
        if b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line + b"\n"
            continue
        line = stream.readline(MAX_DOCUMENT_LINE_BYTES + 1)
        progress.bytes += len(line)
        if pending:
            line, pending = pending + line, b""
        if not line:
            return
        if len(line) > MAX_DOCUMENT_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(1 << 20)
                progress.bytes += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


def read_documents(
    stream: IO[bytes], fmt: str, name: str, progress: ReadProgress | None = None
) -> Iterator[dict[str, Any] | DocResult]:
    """Yield a canonical dict (``id``, ``text``, ``lang``, ``mentions``, ``line``) or a
    pre-errored ``DocResult`` per non-blank line. ``fmt`` is ``text`` (one document per
    line), ``jsonl`` or ``auto`` (JSONL when the first non-blank line is a JSON object)."""
    mode = fmt
    progress = progress or ReadProgress()
    for lineno, raw in enumerate(_lines(stream, progress), 1):
        if not raw.strip():
            continue
        where = f"{name}:{lineno}"
        if len(raw) > MAX_DOCUMENT_LINE_BYTES:
            yield DocResult(
                where,
                None,
                "",
                error=f"{where}: line over {MAX_DOCUMENT_LINE_BYTES:,} bytes; split the document",
                line=lineno,
            )
            continue
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield DocResult(
                where,
                None,
                "",
                error=f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start}); "
                f"re-encode the input as UTF-8",
                line=lineno,
            )
            continue
        if mode == "auto":
            mode = "jsonl" if line.lstrip().startswith("{") else "text"
        if mode == "text":
            yield {"id": where, "text": line, "line": lineno}
            continue
        try:
            obj = jsonio.loads(line)
        except jsonio.JSONError as exc:
            yield DocResult(where, None, "", error=f"{where}: malformed JSON: {exc}", line=lineno)
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            doc_id = obj.get("id") if isinstance(obj, dict) else None
            yield DocResult(
                where if doc_id is None else str(doc_id),
                None,
                "",
                error=f'{where}: a JSONL document must be an object with a "text" string',
                line=lineno,
            )
            continue
        obj.setdefault("id", where)
        obj["line"] = lineno
        yield obj


def link_record(link: Link, with_cands: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "start": link.start,
        "end": link.end,
        "text": link.text,
        "qid": link.qid,
        "label": link.label,
        "description": link.description,
        "score": link.score,
        "prior": link.prior,
    }
    if link.corrected:
        rec["corrected"] = True  # the analyst's corrections of this mention string decided it
    if link.nil_id is not None:
        rec["nil_id"] = link.nil_id  # the unknown entity's local identity (--nil-ids)
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
    """The canonical document shape with each mention's decision (``qid`` null = NIL); a
    document that failed carries ``error`` (and ``line`` where it came from a file)."""
    rec: dict[str, Any] = {
        "id": res.id,
        "lang": res.lang,
        "text": res.text,
        "mentions": [link_record(lk, with_cands) for lk in res.links],
    }
    if res.error is not None:
        rec["error"] = res.error
        if res.line is not None:
            rec["line"] = res.line
    return rec
