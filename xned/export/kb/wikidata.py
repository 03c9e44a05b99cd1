"""Streaming reader for Wikidata JSON dumps (Wikipedia XML dumps: ``kb.anchors``).

Wikidata (``latest-all.json[.gz|.bz2]``): one entity per line inside a JSON array. Each
line is decoded in worker processes (``workers``; msgspec when installed, else the
standard json module) into a compact record: QID, English label and description, labels
and aliases per language, the first instance-of (P31) value as type, and the sitelink
count as popularity; the ``<lang>wiki`` sitelink titles are kept to map Wikipedia link
targets to QIDs. Properties, lexemes and malformed lines are skipped (counted; with
``--strict`` a malformed line is an error naming its number).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import marisa_trie

from xned.engine.normalize import control_as_spaces
from xned.errors import KBBuildError
from xned.export.kb.builder import KBBuilder
from xned.export.spill import Spill
from xned.export.wikimedia import open_maybe_compressed, wiki_title
from xned.titles import TITLE_SEP, trie_qid

if TYPE_CHECKING:
    from xned.export.kb.builder import KBBuilder
    from xned.export.kb.options import KBOptions

MAX_ENTITY_LINE = 64 * 1024 * 1024
CHUNK_LINES = 2000


def _stream_lines(path: Path) -> Iterator[bytes]:
    f = open_maybe_compressed(path)
    try:
        yield from f
    except EOFError as exc:
        raise KBBuildError(f"{path} is truncated ({exc}); download the dump again. Nothing was written.") from None
    except (OSError, ValueError) as exc:
        raise KBBuildError(f"{path} cannot be decompressed ({exc}); is it a complete dump?") from None
    finally:
        f.close()


def _decoder():
    try:
        import msgspec

        dec = msgspec.json.Decoder()
        return dec.decode, (msgspec.DecodeError,)
    except ImportError:
        return json.loads, (ValueError,)


def _parse_entity(obj: dict[str, Any]) -> tuple | None:
    qid = obj.get("id")
    if obj.get("type") != "item" or not isinstance(qid, str) or not qid.startswith("Q"):
        return None
    labels = obj.get("labels") or {}
    descs = obj.get("descriptions") or {}
    aliases = obj.get("aliases") or {}
    sitelinks = obj.get("sitelinks") or {}
    names: list[tuple[str, str, bool]] = []
    for code, v in labels.items():
        if isinstance(v, dict) and v.get("value"):
            names.append((code, v["value"], False))
    for code, vs in aliases.items():
        for v in vs if isinstance(vs, list) else []:
            if isinstance(v, dict) and v.get("value"):
                names.append((code, v["value"], True))
    claims = obj.get("claims") or {}
    p31 = _item_values(claims.get("P31"))
    typ = p31[0] if p31 else ""
    titles = {
        site[:-4]: v.get("title", "")
        for site, v in sitelinks.items()
        if site.endswith("wiki") and site not in ("commonswiki", "specieswiki", "metawiki") and isinstance(v, dict)
    }
    en_label = (labels.get("en") or {}).get("value", "") if isinstance(labels.get("en"), dict) else ""
    en_desc = (descs.get("en") or {}).get("value", "") if isinstance(descs.get("en"), dict) else ""
    return qid, typ, en_label, en_desc, len(sitelinks), names, titles, p31, _item_values(claims.get("P279"))


def _item_values(statements: Any) -> list[str]:
    """The item ids (``Q..``) that a claim list points to, in order."""
    out: list[str] = []
    for claim in statements if isinstance(statements, list) else []:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            v = claim["mainsnak"]["datavalue"]["value"]["id"]
            if isinstance(v, str) and v[:1] == "Q" and v[1:].isdigit():
                out.append(v)
    return out


def _parse_chunk(lines: list[bytes]) -> tuple[list[tuple], list[int]]:
    decode, errors = _decoder()
    try:
        from xned.export.kb import items as typed
    except ImportError:  # no msgspec: the generic decoder for every line
        typed = None  # type: ignore[assignment]
    out, bad = [], []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.endswith(b","):
            line = line[:-1]
        if not line or line in (b"[", b"]"):
            continue
        if typed is not None:  # only the fields a build reads become objects (kb.items)
            try:
                rec = typed.parse_item(typed.decoder.decode(line))
            except typed.ValidationError:
                pass  # a shape the schema does not fit: the generic decoder below decides
            except typed.DecodeError:
                bad.append(i)
                continue
            else:
                if rec is not None:
                    out.append(rec)
                continue
        try:
            obj = decode(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (*errors, ValueError):
            bad.append(i)
            continue
        rec = _parse_entity(obj)
        if rec is not None:
            out.append(rec)
    return out, bad


def _range_lines(path: Path, start: int, stop: int | None) -> Iterator[bytes]:
    """The lines of an uncompressed file that start at a byte in ``[start, stop)``."""
    with open(path, "rb") as f:
        pos = start
        if start > 0:
            f.seek(start - 1)
            pos += len(f.readline()) - 1  # the rest of the line that started before ``start``
        while stop is None or pos < stop:
            line = f.readline()
            if not line:
                return
            pos += len(line)
            yield line


def _chunks(path: Path, byte_range: tuple[int, int | None] | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """Lines in chunks of ``CHUNK_LINES``, with the line number of each chunk's first line
    (counted from the start of ``byte_range`` when one is given)."""
    buf: list[bytes] = []
    start = 1
    lines = _stream_lines(path) if byte_range is None else _range_lines(path, *byte_range)
    for lineno, line in enumerate(lines, 1):
        if len(line) > MAX_ENTITY_LINE:
            raise KBBuildError(f"{path}:{lineno}: entity line over {MAX_ENTITY_LINE} bytes; is this a Wikidata dump?")
        if not buf:
            start = lineno
        buf.append(line)
        if len(buf) >= CHUNK_LINES:
            yield start, buf
            buf = []
    if buf:
        yield start, buf


class TitleMap:
    """Wikipedia title -> QID per language, from Wikidata sitelinks, kept on disk: records
    go to a ``Spill`` while the dump is read; a language's map is a marisa trie of
    ``title<US>qid`` keys built on first use (compact and memory-mapped-sized, so the
    sitelinks of all of Wikidata fit in bounded memory)."""

    def __init__(self, run_records: int = 1_000_000, tmp_dir: Path | None = None):

        self.records = Spill("titles", run_records=run_records, tmp_dir=tmp_dir)
        self._tries: dict[str, Any] = {}

    def add(self, lang: str, title: str, qid: str) -> None:
        title = control_as_spaces(title).strip()
        if title:
            self.records.add(f"{lang}\t{title}\t{qid}")

    def for_lang(self, lang: str) -> Any:
        if lang not in self._tries:
            pre = f"{lang}\t"
            keys = (
                wiki_title(t) + TITLE_SEP + q
                for line in self.records.merged()
                if line.startswith(pre)
                for _, t, q in [line.split("\t")]
            )
            self._tries[lang] = marisa_trie.Trie(keys)
        return self._tries[lang]

    def get(self, lang: str, title: str) -> str | None:
        return trie_qid(self.for_lang(lang), title)

    def close(self) -> None:
        self.records.close()


def read_wikidata(
    path: Path,
    b: KBBuilder,
    *,
    workers: int = 1,
    byte_range: tuple[int, int | None] | None = None,
    sitelinks: bool = True,
    **_: Any,
) -> int:
    """Add every item of a Wikidata JSON dump to the builder ``b``. Returns items read.

    With ``sitelinks``, the items' Wikipedia sitelinks go to ``b.wiki_titles`` (a
    ``TitleMap``) to resolve the links of Wikipedia dumps read later in the same build
    (builds without one skip them: ``build_kb`` passes False). ``byte_range`` reads only the
    lines that start in ``[start, stop)`` of an uncompressed dump (a shard, ``kb.shards``).
    With ``workers`` > 1 this process only reads (and decompresses) the lines: ``workers``
    processes decode them and add them to builders of their own, whose sorted runs ``b``
    then adopts (the same KB: records of one item merge in reading order).
    """
    if b.wiki_titles is None:
        b.wiki_titles = TitleMap(getattr(b, "run_records", 1_000_000), getattr(b, "tmp_dir", None))
    at = "" if byte_range is None else f" of the shard from byte {byte_range[0]:,}"
    if byte_range is not None and re.search(r"\.(gz|bz2)$", path.name):
        raise KBBuildError(f"{path}: a compressed dump cannot be read by byte ranges; decompress it to shard it.")
    if workers <= 1:
        n = 0
        for start, lines in _chunks(path, byte_range):
            n += _consume(b, path, at, start, sitelinks, *_parse_chunk(lines))
        return n
    return _read_in_workers(path, b, workers, byte_range, at, sitelinks)


def _consume(b: KBBuilder, path: Path, at: str, start: int, sitelinks: bool, recs: list[tuple], bad: list[int]) -> int:
    """Add parsed items to ``b`` (their Wikipedia titles too with ``sitelinks``); returns
    how many were added."""
    n = 0
    for i in bad:
        b.fail_or_warn("bad_json", f"{path.name}:{start + i}{at}: malformed JSON line in the dump")
    for qid, typ, label, desc, n_sites, names, site_titles, p31, p279 in recs:
        where = f"{path.name}:{qid}"
        pop = {"sitelinks": float(n_sites)}
        if not b.add_entity(qid, type=typ, label=label, description=desc, popularity=pop, where=where, dump=True):
            continue
        b.add_classes(qid, p31, p279)
        n += 1
        for code, name, is_alias in names:
            b.add_name(code, name, qid, alias=is_alias, where=where)
        if sitelinks:
            for lang, title in site_titles.items():
                b.wiki_titles.add(lang.replace("_", "-"), title, qid)
    return n


_WORKER: dict[str, Any] = {}  # in a worker process of ``_read_in_workers``: its builder and barrier


def _worker_init(options: KBOptions, work: str, barrier: Any) -> None:

    tmp = Path(tempfile.mkdtemp(prefix="worker-", dir=work))
    b = KBBuilder(options, tmp_dir=tmp)
    b.wiki_titles = TitleMap(b.run_records, tmp)
    _WORKER.update(builder=b, barrier=barrier)


def _worker_chunk(source: int, path: str, at: str, sitelinks: bool, start: int, lines: list[bytes]) -> int:
    b = _WORKER["builder"]
    b.begin_source(source, start)  # records of one item merge by (source, first line of the chunk, order)
    return _consume(b, Path(path), at, start, sitelinks, *_parse_chunk(lines))


def _worker_finish(_: int) -> dict[str, Any]:
    """The worker's sorted runs and report. Every worker gets exactly one of these tasks:
    each waits at the barrier until all workers hold one."""
    _WORKER["barrier"].wait(timeout=3600)
    b = _WORKER["builder"]
    out = b.hand_over()
    out["titles"] = ([str(p) for p in b.wiki_titles.records.finish()], len(b.wiki_titles.records))
    b.close()  # the handed-over runs stay, in the reading builder's work directory
    return out


def _read_in_workers(
    path: Path, b: KBBuilder, workers: int, byte_range: tuple[int, int | None] | None, at: str, sitelinks: bool
) -> int:
    work = Path(tempfile.mkdtemp(prefix="xned-read-", dir=getattr(b, "tmp_dir", None)))
    b.work_dirs.append(work)  # removed with the builder's spills
    options = b.options
    # spawn: a forked child can deadlock on a lock held by a parent thread (the encoder's)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    n = 0
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(options, str(work), barrier)
    )
    try:
        pending: list = []
        for start, lines in _chunks(path, byte_range):
            pending.append(pool.submit(_worker_chunk, b.source, str(path), at, sitelinks, start, lines))
            while len(pending) > 2 * workers:  # bounded read-ahead
                n += pending.pop(0).result()
        n += sum(f.result() for f in pending)
        outputs = list(pool.map(_worker_finish, range(workers)))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    for out in outputs:
        b.adopt(out)
        b.wiki_titles.records.adopt([Path(p) for p in out["titles"][0]], out["titles"][1])
    return n
