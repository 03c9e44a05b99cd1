"""Wikipedia articles as labelled training contexts: each ``[[Target|anchor]]`` link becomes
a mention of ``Target`` (mapped to a QID through a title map, following redirects of the
same dump) in the article's plain text.

Wikitext is reduced to text with character offsets kept for the links: comments, ``<ref>``
notes, templates ``{{...}}``, tables ``{|...|}``, file/category links and HTML tags are
removed; bold/italic quotes and heading marks are dropped. mwparserfromhell's
``strip_code`` would do the stripping but loses the offsets the mention spans need, so this
is a small scanner. Each page's text is cut at ``max_chars`` (the lead of an article holds
most of its links), so memory is bounded per page whatever the dump size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from xned.export.dumps import wiki_title
from xned.export.wikipedia import dump_language, iter_pages

MAX_CHARS = 20_000
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_QUOTES = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M)
_SKIP_NS = ("file:", "image:", "category:", "media:")


def _strip_nested(text: str, open_: str, close: str) -> str:
    """Remove balanced ``open_ ... close`` blocks (templates, tables), innermost first."""
    out, depth, i = [], 0, 0
    n, lo, lc = len(text), len(open_), len(close)
    start = 0
    while i < n:
        if text.startswith(open_, i):
            if depth == 0:
                out.append(text[start:i])
            depth += 1
            i += lo
        elif depth and text.startswith(close, i):
            depth -= 1
            i += lc
            if depth == 0:
                start = i
        else:
            i += 1
    if depth == 0:
        out.append(text[start:])
    return "".join(out)


def plain_text_with_links(wikitext: str, max_chars: int = MAX_CHARS) -> tuple[str, list[tuple[int, int, str]]]:
    """(plain text, [(start, end, target title)]) of a page's wikitext."""
    t = _COMMENT.sub("", wikitext)
    t = _REF.sub("", t)
    t = _strip_nested(t, "{{", "}}")
    t = _strip_nested(t, "{|", "|}")
    t = _HEADING.sub(r"\1", t)
    t = _QUOTES.sub("", t)
    out: list[str] = []
    links: list[tuple[int, int, str]] = []
    pos = 0  # length of the text produced so far
    i, n = 0, len(t)
    while i < n and pos < max_chars:
        j = t.find("[[", i)
        if j < 0:
            chunk = _TAG.sub("", t[i:])
            out.append(chunk)
            pos += len(chunk)
            break
        chunk = _TAG.sub("", t[i:j])
        out.append(chunk)
        pos += len(chunk)
        # find the matching ]] (links may nest inside file captions)
        depth, k = 0, j
        while k < n:
            if t.startswith("[[", k):
                depth += 1
                k += 2
            elif t.startswith("]]", k):
                depth -= 1
                k += 2
                if depth == 0:
                    break
            else:
                k += 1
        inner = t[j + 2 : k - 2]
        i = k
        if depth != 0 or inner.lower().startswith(_SKIP_NS) or "[[" in inner:
            continue
        target, _, anchor = inner.partition("|")
        anchor = _TAG.sub("", anchor if anchor else target).strip()
        target = target.split("#", 1)[0]
        if not anchor or ":" in target or not target.strip():
            out.append(anchor)
            pos += len(anchor)
            continue
        # a link trail ("[[bank]]s") belongs to the anchor text
        m = re.match(r"[a-z]+", t[i:])
        if m:
            anchor += m.group(0)
            i += m.end()
        links.append((pos, pos + len(anchor), wiki_title(target)))
        out.append(anchor)
        pos += len(anchor)
    text = "".join(out)[:max_chars]
    return text, [(s, e, tt) for s, e, tt in links if e <= len(text)]


def read_wikipedia_contexts(path: Path, titles: dict[str, str], *, max_chars: int = MAX_CHARS) -> Iterator:
    """``TrainDoc`` per article (namespace 0, not a redirect) of a Wikipedia XML dump.

    Link targets are resolved through the dump's redirects when the redirect page comes
    before the linking page, and then ``titles`` (title -> QID); unresolved targets are
    kept as unresolved mentions (neither NIL nor training labels)."""
    from xned.export.experts_train import UNRESOLVED, TrainDoc

    redirect_qid: dict[str, str] = {}  # only redirects to mapped titles: bounded by the map
    lang = "en"

    def on_dbname(name: str) -> None:
        nonlocal lang
        lang = dump_language(name) or lang

    for page in iter_pages(Path(path), on_dbname):
        if page.ns != "0":
            continue
        if page.redirect:
            if (q := titles.get(wiki_title(page.redirect))) is not None:
                redirect_qid[wiki_title(page.title)] = q
            continue
        plain, links = plain_text_with_links(page.text, max_chars)
        spans: list[tuple[int, int, str | None]] = []
        for s, e, target in links:
            spans.append((s, e, titles.get(target) or redirect_qid.get(target) or UNRESOLVED))
        if plain.strip() and spans:
            yield TrainDoc(f"{Path(path).name}/{wiki_title(page.title)}", lang, plain, spans)
