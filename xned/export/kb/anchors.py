"""Streaming reader for Wikipedia XML dumps (``<lang>wiki-*-pages-articles.xml[.bz2]``):
pages of namespace 0 streamed with ``iterparse``; redirects give aliases of their target;
``[[Target|anchor]]`` links of the article's plain text give anchor -> target counts (native
p(e|m)), resolved through redirects and then to QIDs via the Wikidata sitelinks read in the
same build (``kb.wikidata``) or a ``title<TAB>qid`` TSV. Anchors, their occurrences
(``--link-prob``) and the experts' training contexts all come from one parse,
``wikimedia.plain_text_with_links``.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import marisa_trie
import numpy as np

from xned.engine.mentions import TOKEN_RE, joined_keys
from xned.engine.normalize import control_as_spaces, normalize
from xned.errors import KBBuildError
from xned.export.spill import Spill, grouped
from xned.export.wikimedia import dump_language, iter_pages, plain_text_with_links, wiki_title
from xned.titles import load_titles

if TYPE_CHECKING:
    from xned.export.kb.builder import KBBuilder
    from xned.export.spill import Spill


def read_wikipedia(
    path: Path,
    b: KBBuilder,
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

    dump = _first_pass(path, getattr(b, "run_records", 1_000_000), lang)
    if getattr(b, "wiki_titles", None) is not None:
        b.wiki_langs.add(dump.lang)
    try:
        resolver = _Resolver(dump, b.wiki_titles, titles_tsv)
        unresolved = 0
        if link_prob:
            _link_probability(path, b, dump.lang, dump.anchors)
        for (target,), rows in grouped(dump.anchors.merged(), 1):
            qid = resolver.resolve(target)
            if qid is None:
                unresolved += 1
                continue
            where = f"{path.name}:{target}"
            b.add_entity(qid, label=target if dump.lang == "en" else "", where=where, weak=True)
            for anchor, group in itertools.groupby(rows, key=lambda r: r[0]):
                b.add_count(dump.lang, anchor, qid, float(sum(int(r[1]) for r in group)), where=where)
        for t in dump.pages.merged():
            qid = resolver.lookup(t)
            if qid is not None:
                b.add_name(dump.lang, re.sub(r"\s*\([^)]*\)$", "", t), qid, where=path.name)
        for line in dump.redirects.merged():
            src, dst = line.split("\t", 1)
            qid = resolver.resolve(dst)
            if qid is not None:
                b.add_name(dump.lang, src, qid, alias=True, where=path.name)
    finally:
        dump.close()
    if unresolved:
        b.report.warn(
            "unresolved_links",
            f"{path.name}: {unresolved:,} distinct link targets have no QID "
            f"(give Wikidata sitelinks or --titles title<TAB>qid)",
        )
        b.report.counts["unresolved_links"] += unresolved - 1
    return dump.n_pages


@dataclass
class _Dump:
    """What the first pass over a dump leaves on disk: anchor counts, redirects and titles."""

    lang: str
    n_pages: int
    anchors: Spill  # target, anchor, count
    redirects: Spill  # source, target
    pages: Spill  # title

    def close(self) -> None:
        for sp in (self.anchors, self.redirects, self.pages):
            sp.close()


def _first_pass(path: Path, run: int, lang: str | None) -> _Dump:

    anchors = Spill("anchors", run_records=run)
    redirects = Spill("redirects", run_records=run)
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
    try:
        for page in iter_pages(path, on_dbname):
            if page.ns != "0":
                continue
            n += 1
            if page.redirect:
                redirects.add(f"{wiki_title(page.title)}\t{wiki_title(page.redirect)}")
                continue
            pages.add(wiki_title(page.title))
            # the links of the article's plain text: the same parse that counts the anchors'
            # occurrences (--link-prob) and makes training contexts, so a link inside a
            # template, table or reference (absent from the plain text) is not counted
            plain, links = plain_text_with_links(page.text, max_chars=10**9)
            for s, e, target in links:
                anchor = control_as_spaces(plain[s:e]).strip()
                if anchor:
                    local[(target, anchor)] += 1
            if len(local) >= run:
                flush_local()
        flush_local()
        if dump_lang is None:
            raise KBBuildError(f"{path}: cannot tell the dump's language (no <dbname>); pass --wiki-lang.")
    except BaseException:
        for sp in (anchors, redirects, pages):
            sp.close()
        raise
    return _Dump(dump_lang, n, anchors, redirects, pages)


class _Resolver:
    """Wikipedia titles -> QIDs: the Wikidata sitelinks of the same build, then a
    ``title<TAB>qid`` TSV, following short redirect chains of the dump."""

    def __init__(self, dump: _Dump, sitelinks: Any, titles_tsv: Path | None):

        self.lang = dump.lang
        self.sitelinks = sitelinks
        self.extra = load_titles(titles_tsv)
        self.redirects = marisa_trie.Trie(line.replace("\t", "\x1f", 1) for line in dump.redirects.merged())

    def lookup(self, t: str) -> str | None:
        if self.sitelinks is not None and (q := self.sitelinks.get(self.lang, t)) is not None:
            return q
        return self.extra.get(t)

    def resolve(self, t: str) -> str | None:
        for _ in range(3):  # follow short redirect chains
            if (q := self.lookup(t)) is not None:
                return q
            hits = self.redirects.keys(t + "\x1f")
            if not hits:
                return None
            t = min(hits).split("\x1f", 1)[1]
        return self.lookup(t)


def _link_probability(path: Path, b: KBBuilder, lang: str, anchors: Spill) -> None:
    """Second pass: occurrences of every anchor key in plain article text."""

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
        # linked <= seen up to tokenization edge cases (9 of 17,356 keys on the enwiki sample)
        b.add_occurrences(lang, trie.restore_key(kid), float(max(seen[kid], linked[kid])), float(linked[kid]))
