"""Streaming reader for Wikipedia XML dumps (``<lang>wiki-*-pages-articles.xml[.bz2]``):
pages of namespace 0 streamed with ``iterparse``; redirects give aliases of their target;
``[[Target|anchor]]`` links give anchor -> target counts (native p(e|m)), resolved through
redirects and then to QIDs via the Wikidata sitelinks read in the same build (``kb.wikidata``)
or a ``title<TAB>qid`` TSV.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xned.errors import KBBuildError
from xned.export.wikimedia import LINK_RE, dump_language, iter_pages, plain_text_with_links, wiki_title

if TYPE_CHECKING:
    from xned.export.kb.builder import KBBuilder
    from xned.export.spill import Spill

_CTRL = re.compile(r"[\x00-\x1f\x7f]")


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


def _link_probability(path: Path, b: KBBuilder, lang: str, anchors: Spill) -> None:
    """Second pass: occurrences of every anchor key in plain article text."""
    import marisa_trie
    import numpy as np

    from xned.engine.mentions import TOKEN_RE, joined_keys
    from xned.engine.normalize import normalize
    from xned.export.spill import Spill, grouped

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
