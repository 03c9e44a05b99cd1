"""Annotated training documents of the word experts and the mention detector, read as
``TrainDoc`` streams: canonical JSONL, or Wikipedia XML dumps where each
``[[Target|anchor]]`` link becomes a mention of ``Target``
(mapped to a QID through a title map, following redirects of the same dump) in the
article's plain text. Also the deterministic document split used for calibration."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import marisa_trie

from xned.engine import layout as L
from xned.errors import InputError
from xned.evalsets import read_jsonl
from xned.export.wikimedia import (
    MAX_CHARS,
    dump_language,
    is_wikipedia,
    iter_pages,
    plain_text_with_links,
    wiki_title,
)
from xned.records import ReadProgress
from xned.titles import Titles, trie_qid

UNRESOLVED = "?"  # gold given as a title that maps to no QID: neither NIL nor usable


class BundleTitles:
    """Title -> QID (``get``, as a ``titles`` map) from the Wikipedia titles a KB build
    wrote beside the KB (``kb/wiki_titles/<lang>.marisa``), memory-mapped: a whole
    Wikipedia's titles without a dict in memory. ``langs``: the source languages."""

    def __init__(self, kb_dir: Path, langs: Iterable[str]):
        self.tries = []
        for lang in langs:
            path = kb_dir / L.KBDir.WIKI_TITLES / f"{lang}.marisa"
            if path.is_file():
                trie = marisa_trie.Trie()
                trie.mmap(str(path))
                self.tries.append(trie)

    def get(self, title: str, /) -> str | None:
        for trie in self.tries:
            if (qid := trie_qid(trie, title)) is not None:
                return qid
        return None


def in_holdout(doc_id: str, fraction: float, seed: int = 0) -> bool:
    """Deterministic document split used for calibration (and by the evaluation protocol
    to keep held-out documents out of the KB's anchor counts)."""
    if fraction <= 0:
        return False
    h = hashlib.sha1(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


@dataclass
class TrainDoc:
    id: str
    lang: str
    text: str
    spans: list[tuple[int, int, str | None]]  # (start, end, qid); None = NIL, UNRESOLVED = unknown gold
    #: only some of the names are marked (Wikipedia links): text outside the spans is not
    #: known to hold no mention
    partial: bool = False


def read_training(
    files: Iterable[Path],
    *,
    titles: Titles | None = None,
    source_langs: set[str] | None = None,
    max_docs: int | None = None,
    progress: ReadProgress | None = None,
    wanted: Callable[[str], bool] | None = None,
) -> Iterator[TrainDoc]:
    """Source-language training documents from canonical JSONL files or Wikipedia XML dumps
    (``*.xml``, ``*.xml.bz2``: anchors become labelled mentions; targets are mapped to QIDs
    through ``titles``). ``progress.bytes`` grows with the bytes of the files read (per page
    of a dump, per file of JSONL); ``wanted(qid)`` says which redirects of a dump are worth
    remembering (those to entities the caller uses: memory bounded by them, not by the
    dump)."""

    titles = {} if titles is None else titles
    n = 0
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Training file {path} not found.")
        name = path.name
        whole_file = name.endswith(".jsonl")  # progress per file (a dump counts per page)
        if whole_file:
            docs: Iterable[TrainDoc] = (
                TrainDoc(
                    d.id,
                    d.lang or _lang_from_name(name) or "",
                    d.text,
                    [(g.start, g.end, UNRESOLVED if g.unresolved else g.qid) for g in d.gold],
                )
                for d in read_jsonl(path, titles)
            )
        elif name.endswith((".xml", ".xml.bz2", ".xml.gz")) or is_wikipedia(path):
            docs = read_wikipedia_contexts(path, titles, progress=progress, wanted=wanted)
        else:
            raise InputError(f"{path}: unknown training format; use canonical .jsonl or a Wikipedia .xml[.bz2] dump")
        for d in docs:
            if source_langs and d.lang not in source_langs:
                continue
            yield d
            n += 1
            if max_docs is not None and n >= max_docs:
                return
        if progress is not None and whole_file:
            progress.bytes += path.stat().st_size


def _lang_from_name(name: str) -> str | None:
    parts = name.split(".")
    return parts[-2] if len(parts) >= 3 and 2 <= len(parts[-2]) <= 3 else None


def read_wikipedia_contexts(
    path: Path,
    titles: Titles,
    *,
    max_chars: int = MAX_CHARS,
    progress: ReadProgress | None = None,
    wanted: Callable[[str], bool] | None = None,
) -> Iterator[TrainDoc]:
    """``TrainDoc`` per article (namespace 0, not a redirect) of a Wikipedia XML dump.

    Link targets are resolved through the dump's redirects when the redirect page comes
    before the linking page, and then ``titles`` (title -> QID); unresolved targets are
    kept as unresolved mentions (neither NIL nor training labels). Only redirects to mapped
    titles are remembered, and with ``wanted`` only those to a wanted QID."""
    redirect_qid: dict[str, str] = {}  # bounded by the title map (and by ``wanted``)
    lang = "en"

    def on_dbname(name: str) -> None:
        nonlocal lang
        lang = dump_language(name) or lang

    for page in iter_pages(Path(path), on_dbname, progress):
        if page.ns != "0":
            continue
        if page.redirect:
            q = titles.get(wiki_title(page.redirect))
            if q is not None and (wanted is None or wanted(q)):
                redirect_qid[wiki_title(page.title)] = q
            continue
        plain, links = plain_text_with_links(page.text, max_chars)
        spans: list[tuple[int, int, str | None]] = []
        for s, e, target in links:
            spans.append((s, e, titles.get(target) or redirect_qid.get(target) or UNRESOLVED))
        if plain.strip() and spans:
            yield TrainDoc(f"{Path(path).name}/{wiki_title(page.title)}", lang, plain, spans, partial=True)
