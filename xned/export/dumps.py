"""Streaming readers for Wikidata JSON dumps and Wikipedia XML dumps.

Wikidata (``latest-all.json[.gz|.bz2]``): one entity per line inside a JSON array. Each
line is decoded in worker processes (``workers``; msgspec when installed, else the
standard json module) into a compact record: QID, English label and description, labels
and aliases per language, the first instance-of (P31) value as type, and the sitelink
count as popularity; the ``<lang>wiki`` sitelink titles are kept to map Wikipedia link
targets to QIDs. Properties, lexemes and malformed lines are skipped (counted; with
``--strict`` a malformed line is an error naming its number).

Wikipedia (``<lang>wiki-*-pages-articles.xml[.bz2]``): pages of namespace 0 streamed with
``iterparse``; redirects give aliases of their target; ``[[Target|anchor]]`` links give
anchor -> target counts (native p(e|m)), resolved through redirects and then to QIDs via
the Wikidata sitelinks read in the same build or a ``title<TAB>qid`` TSV.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xned.errors import KBBuildError

MAX_ENTITY_LINE = 64 * 1024 * 1024
CHUNK_LINES = 2000


def open_maybe_compressed(path: Path) -> Any:
    name = path.name.lower()
    if name.endswith(".bz2"):
        try:
            import indexed_bzip2  # parallel bz2 decoding where installed

            return io.BufferedReader(indexed_bzip2.open(str(path), parallelization=2))  # type: ignore[arg-type]
        except ImportError:
            return bz2.open(path, "rb")
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


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
    typ = ""
    for claim in (obj.get("claims") or {}).get("P31", [])[:1]:
        with contextlib.suppress(KeyError, TypeError):
            typ = claim["mainsnak"]["datavalue"]["value"]["id"]
    titles = {
        site[:-4]: v.get("title", "")
        for site, v in sitelinks.items()
        if site.endswith("wiki") and site not in ("commonswiki", "specieswiki", "metawiki") and isinstance(v, dict)
    }
    en_label = (labels.get("en") or {}).get("value", "") if isinstance(labels.get("en"), dict) else ""
    en_desc = (descs.get("en") or {}).get("value", "") if isinstance(descs.get("en"), dict) else ""
    return qid, typ, en_label, en_desc, len(sitelinks), names, titles


def _parse_chunk(lines: list[bytes]) -> tuple[list[tuple], list[int]]:
    decode, errors = _decoder()
    out, bad = [], []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.endswith(b","):
            line = line[:-1]
        if not line or line in (b"[", b"]"):
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
        from xned.export.spill import Spill

        self.records = Spill("titles", run_records=run_records, tmp_dir=tmp_dir)
        self._tries: dict[str, Any] = {}

    def add(self, lang: str, title: str, qid: str) -> None:
        title = re.sub(r"[\x00-\x1f\x7f]", " ", title).strip()
        if title:
            self.records.add(f"{lang}\t{title}\t{qid}")

    def for_lang(self, lang: str) -> Any:
        if lang not in self._tries:
            import marisa_trie

            pre = f"{lang}\t"
            keys = (
                wiki_title(t) + "\x1f" + q
                for line in self.records.merged()
                if line.startswith(pre)
                for _, t, q in [line.split("\t")]
            )
            self._tries[lang] = marisa_trie.Trie(keys)
        return self._tries[lang]

    def get(self, lang: str, title: str) -> str | None:
        hits = self.for_lang(lang).keys(title + "\x1f")
        return min(hits).rsplit("\x1f", 1)[1] if hits else None

    def close(self) -> None:
        self.records.close()


def read_wikidata(
    path: Path, b, *, workers: int = 1, byte_range: tuple[int, int | None] | None = None, **_: Any
) -> int:
    """Add every item of a Wikidata JSON dump to the builder ``b``. Returns items read.

    The items' Wikipedia sitelinks go to ``b.wiki_titles`` (a ``TitleMap``) to resolve the
    links of Wikipedia dumps read later in the same build. ``byte_range`` reads only the
    lines that start in ``[start, stop)`` of an uncompressed dump (a shard, ``kb_shards``).
    """
    n = 0
    if b.wiki_titles is None:
        b.wiki_titles = TitleMap(getattr(b, "run_records", 1_000_000), getattr(b, "tmp_dir", None))
    title_map = b.wiki_titles
    at = "" if byte_range is None else f" of the shard from byte {byte_range[0]:,}"

    def consume(start: int, recs: list[tuple], bad: list[int]) -> None:
        nonlocal n
        for i in bad:
            b.fail_or_warn("bad_json", f"{path.name}:{start + i}{at}: malformed JSON line in the dump")
        for qid, typ, label, desc, n_sites, names, site_titles in recs:
            where = f"{path.name}:{qid}"
            if not b.add_entity(
                qid, type=typ, label=label, description=desc, popularity={"sitelinks": float(n_sites)}, where=where
            ):
                continue
            n += 1
            for code, name, is_alias in names:
                b.add_name(code, name, qid, alias=is_alias, where=where)
            for lang, title in site_titles.items():
                title_map.add(lang.replace("_", "-"), title, qid)

    if byte_range is not None and re.search(r"\.(gz|bz2)$", path.name):
        raise KBBuildError(f"{path}: a compressed dump cannot be read by byte ranges; decompress it to shard it.")
    if workers <= 1:
        for start, lines in _chunks(path, byte_range):
            recs, bad = _parse_chunk(lines)
            consume(start, recs, bad)
        return n
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: list = []
        for start, lines in _chunks(path, byte_range):
            pending.append((start, pool.submit(_parse_chunk, lines)))
            while len(pending) > 2 * workers:  # bounded read-ahead, input order kept
                s, fut = pending.pop(0)
                consume(s, *fut.result())
        for s, fut in pending:
            consume(s, *fut.result())
    return n


# -- Wikipedia ---------------------------------------------------------------------------------
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
LINK_RE = re.compile(r"\[\[([^\[\]|#<>{}]+)(?:#[^\[\]|]*)?(?:\|([^\[\]]*))?\]\]")


def wiki_title(t: str) -> str:
    t = t.replace("_", " ").strip()
    t = re.sub(r"\s+", " ", t)
    return t[:1].upper() + t[1:] if t else t


def _tag(elem: ET.Element) -> str:
    return elem.tag.rsplit("}", 1)[-1]


@dataclass
class Page:
    title: str
    ns: str | None
    redirect: str | None
    text: str


def iter_pages(path: Path, on_dbname: Any = None) -> Iterator[Page]:
    """Pages of a MediaWiki XML dump, streamed (``iterparse``, each page cleared after
    use). ``on_dbname(name)`` is called with the ``<dbname>`` (e.g. ``enwiki``)."""
    f = open_maybe_compressed(Path(path))
    try:
        title = ns = redirect = text = None
        for _event, elem in ET.iterparse(f, events=("end",)):
            tag = _tag(elem)
            if tag == "dbname" and elem.text and on_dbname is not None:
                on_dbname(elem.text)
            elif tag == "title":
                title = elem.text or ""
            elif tag == "ns":
                ns = elem.text
            elif tag == "redirect":
                redirect = elem.get("title")
            elif tag == "text":
                text = elem.text or ""
            elif tag == "page":
                if title:
                    yield Page(title, ns, redirect, text or "")
                title = ns = redirect = text = None
                elem.clear()
    except ET.ParseError as exc:
        raise KBBuildError(f"{path}: XML error ({exc}); is this a complete pages-articles dump?") from None
    except EOFError as exc:
        raise KBBuildError(f"{path} is truncated ({exc}); download the dump again. Nothing was written.") from None
    finally:
        f.close()


def dump_language(dbname: str) -> str | None:
    """``enwiki`` -> ``en``, ``zh_yuewiki`` -> ``zh-yue``."""
    m = re.match(r"^([a-z_-]+?)wiki", dbname)
    return m.group(1).replace("_", "-") if m else None


def read_wikipedia(
    path: Path,
    b,
    *,
    titles_tsv: Path | None = None,
    lang: str | None = None,
    link_prob: bool = False,
    **_: Any,
) -> int:
    """Titles, redirects and anchor counts of a Wikipedia dump. Returns pages read.

    Bounded memory: anchor counts are aggregated per ``run_records`` distinct pairs and
    spilled to sorted runs; titles and redirects go to runs too, and redirects are looked up
    in a marisa trie built from them once the dump is read.

    With ``link_prob`` a second pass over the dump counts how often each anchor text occurs
    in the articles' plain text (on token boundaries, normalized as alias keys), linked or
    not: P(link | string) = anchor count / occurrences, used by mention detection."""
    import marisa_trie

    from xned.export.spill import Spill, grouped

    run = getattr(b, "run_records", 1_000_000)
    anchors = Spill("anchors", run_records=run)  # target, anchor, count
    redirect_recs = Spill("redirects", run_records=run)  # source, target
    pages = Spill("pages", run_records=run)
    local: dict[tuple[str, str], int] = defaultdict(int)

    def flush_local() -> None:
        for (target, anchor), c in local.items():
            anchors.add(f"{target}\t{anchor}\t{c}")
        local.clear()

    dump_lang = lang

    def on_dbname(name: str) -> None:
        nonlocal dump_lang
        if dump_lang is None:
            dump_lang = dump_language(name)

    n = 0
    for page in iter_pages(path, on_dbname):
        if page.ns != "0":
            continue
        n += 1
        if page.redirect:
            redirect_recs.add(f"{wiki_title(page.title)}\t{wiki_title(page.redirect)}")
            continue
        pages.add(wiki_title(page.title))
        for m in LINK_RE.finditer(page.text):
            target = wiki_title(m.group(1))
            if ":" in target or not target:
                continue  # File:, Category:, interwiki
            anchor = (m.group(2) if m.group(2) is not None else m.group(1)).strip()
            anchor = _CTRL.sub(" ", anchor).strip()
            if anchor:
                local[(target, anchor)] += 1
        if len(local) >= run:
            flush_local()
    flush_local()
    if dump_lang is None:
        raise KBBuildError(f"{path}: cannot tell the dump's language (no <dbname>); pass --wiki-lang.")
    extra: dict[str, str] = {}
    if titles_tsv is not None:
        for line in Path(titles_tsv).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and not line.startswith("#"):
                extra.setdefault(wiki_title(parts[0]), parts[1].strip())
    sitelinks = b.wiki_titles
    redirects = marisa_trie.Trie(line.replace("\t", "\x1f", 1) for line in redirect_recs.merged())

    def lookup(t: str) -> str | None:
        if sitelinks is not None and (q := sitelinks.get(dump_lang, t)) is not None:
            return q
        return extra.get(t)

    def resolve(t: str) -> str | None:
        for _ in range(3):  # follow short redirect chains
            if (q := lookup(t)) is not None:
                return q
            hits = redirects.keys(t + "\x1f")
            if not hits:
                return None
            t = min(hits).split("\x1f", 1)[1]
        return lookup(t)

    unresolved = 0
    try:
        if link_prob:
            _link_probability(path, b, dump_lang, anchors)
        for (target,), rows in grouped(anchors.merged(), 1):
            qid = resolve(target)
            if qid is None:
                unresolved += 1
                continue
            where = f"{path.name}:{target}"
            b.add_entity(qid, label=target if dump_lang == "en" else "", where=where, weak=True)
            for anchor, group in itertools.groupby(rows, key=lambda r: r[0]):
                b.add_count(dump_lang, anchor, qid, float(sum(int(r[1]) for r in group)), where=where)
        for t in pages.merged():
            qid = lookup(t)
            if qid is not None:
                b.add_name(dump_lang, re.sub(r"\s*\([^)]*\)$", "", t), qid, where=path.name)
        for line in redirect_recs.merged():
            src, dst = line.split("\t", 1)
            qid = resolve(dst)
            if qid is not None:
                b.add_name(dump_lang, src, qid, alias=True, where=path.name)
    finally:
        for sp in (anchors, redirect_recs, pages):
            sp.close()
    if unresolved:
        b.report.warn(
            "unresolved_links",
            f"{path.name}: {unresolved:,} distinct link targets have no QID "
            f"(give Wikidata sitelinks or --titles title<TAB>qid)",
        )
        b.report.counts["unresolved_links"] += unresolved - 1
    return n


def _link_probability(path: Path, b, lang: str, anchors) -> None:
    """Second pass: occurrences of every anchor key in plain article text."""
    import marisa_trie
    import numpy as np

    from xned.engine.mentions import TOKEN_RE, joined_keys
    from xned.engine.normalize import normalize
    from xned.export.spill import Spill, grouped
    from xned.export.wiki_contexts import plain_text_with_links

    keyed = Spill("anchor-keys", run_records=getattr(b, "run_records", 1_000_000))
    for (_target,), rows in grouped(anchors.merged(), 1):
        for anchor, count in rows:
            k = normalize(anchor)
            if k:
                keyed.add(f"{k}\t{count}")
    trie = marisa_trie.Trie(k for (k,), _ in grouped(keyed.merged(), 1))
    linked = np.zeros(len(trie), np.float64)
    for (k,), rows in grouped(keyed.merged(), 1):
        linked[trie[k]] = sum(float(r[0]) for r in rows)
    keyed.close()
    seen = np.zeros(len(trie), np.float64)
    for page in iter_pages(path):
        if page.ns != "0" or page.redirect or not page.text:
            continue
        plain, _ = plain_text_with_links(page.text, max_chars=10**9)
        toks = [m.span() for m in TOKEN_RE.finditer(plain)]
        joined, starts, ends = joined_keys(plain, toks, normalize)
        for p in starts:
            for k in trie.prefixes(joined[p : p + 80]):
                if p + len(k) in ends:
                    seen[trie[k]] += 1
    for kid in np.nonzero(seen)[0].tolist():
        b.add_occurrences(lang, trie.restore_key(kid), float(max(seen[kid], linked[kid])), float(linked[kid]))
