"""Wikimedia dump formats shared by the KB build and expert training: compressed dump files,
the Wikipedia title rule, the XML page iterator, the wikilink pattern, and wikitext reduced
to plain text with its links' character offsets.

Wikitext is reduced to text with character offsets kept for the links: comments, ``<ref>``
notes, templates ``{{...}}``, tables ``{|...|}``, file/category links and HTML tags are
removed; bold/italic quotes and heading marks are dropped. mwparserfromhell's
``strip_code`` would do the stripping but loses the offsets the mention spans need, so this
is a small scanner. Each page's text is cut at ``max_chars`` (the lead of an article holds
most of its links), so memory is bounded per page whatever the dump size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xned.errors import KBBuildError
from xned.records import ReadProgress
from xned.titles import title_key as wiki_title  # the one title rule


class _Bz2Raw(io.RawIOBase):
    """``indexed_bzip2``'s reader with Python's error for a stream that ends early: it raises
    a bare ``RuntimeError("std::exception")``, ``bz2`` an ``EOFError``."""

    def __init__(self, f: Any):
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            return self.f.readinto(b)
        except RuntimeError as exc:
            raise EOFError(f"the bz2 data ends early or is damaged: {exc}") from None

    def close(self) -> None:
        self.f.close()
        super().close()


def open_maybe_compressed(path: Path) -> Any:
    """A binary file object over ``path``, decompressed by its suffix; a bz2 file is decoded
    by ``indexed_bzip2`` on every core (its blocks are found and decoded in parallel, even
    in one stream) where it is installed, else by Python's ``bz2`` on one."""
    name = path.name.lower()
    if name.endswith(".bz2"):
        try:
            import indexed_bzip2
        except ImportError:
            return bz2.open(path, "rb")
        threads = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)
        return io.BufferedReader(_Bz2Raw(indexed_bzip2.open(str(path), parallelization=threads)))
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def compressed_position(f: Any) -> Callable[[], int | None]:
    """For a reader from ``open_maybe_compressed``: a function giving how many bytes of the
    file on disk it has consumed (for progress and ETA), or None where it cannot tell."""
    raw = getattr(f, "raw", None)
    if isinstance(raw, _Bz2Raw) and hasattr(raw.f, "tell_compressed"):
        return lambda: int(raw.f.tell_compressed()) // 8 or None  # bits; 0 once the stream ends
    inner = getattr(f, "_fp", None) or getattr(f, "fileobj", None)  # bz2.BZ2File, gzip.GzipFile
    target = inner if inner is not None else f
    return lambda: target.tell() if not target.closed else None


def _tag(elem: ET.Element) -> str:
    return elem.tag.rsplit("}", 1)[-1]


@dataclass
class Page:
    title: str
    ns: str | None
    redirect: str | None
    text: str


def iter_pages(path: Path, on_dbname: Any = None, progress: ReadProgress | None = None) -> Iterator[Page]:
    """Pages of a MediaWiki XML dump, streamed (``iterparse``; every finished page is
    detached from the root, so memory does not grow with the dump). ``on_dbname(name)`` is
    called with the ``<dbname>`` (e.g. ``enwiki``); ``progress.bytes`` grows by the bytes of
    the file read so far."""
    f = open_maybe_compressed(Path(path))
    where = compressed_position(f)
    base = progress.bytes if progress is not None else 0
    size = Path(path).stat().st_size
    try:
        title = ns = redirect = text = None
        root = None
        for event, elem in ET.iterparse(f, events=("start", "end")):
            if root is None:
                root = elem  # the first start event: <mediawiki>
            if event == "start":
                continue
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
                if progress is not None:
                    pos = where()
                    if pos is not None:
                        progress.bytes = base + min(pos, size)
                if title:
                    yield Page(title, ns, redirect, text or "")
                title = ns = redirect = text = None
                root.clear()  # the page and everything before it (clearing the page alone kept it in the root)
        if progress is not None:
            progress.bytes = base + size
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


_WIKIPEDIA = re.compile(r"\.xml(\.bz2)?$|\.xml-.*\.bz2$|-shortened\.bz2$")


def is_wikipedia(path: Path) -> bool:
    """Whether ``path`` is read as a Wikipedia XML dump (by its file name)."""
    return bool(_WIKIPEDIA.search(Path(path).name.lower()))
