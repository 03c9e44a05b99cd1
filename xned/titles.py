"""Wikipedia titles: the one key rule (KB build, training contexts, gold data) and the one
``title<TAB>QID`` reader."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from xned.config import MAX_TITLE_LINE_CHARS
from xned.errors import InputError
from xned.types import QID_RE


class Titles(Protocol):
    """A title -> QID map: a dict from ``load_titles``, or the memory-mapped titles a KB
    build writes (``xned.export.training_docs.BundleTitles``)."""

    def get(self, key: str, /) -> str | None: ...


#: between a title and its QID in the keys of a title trie ("title<US>QID")
TITLE_SEP = "\x1f"


def trie_qid(trie: Any, title: str) -> str | None:
    """The QID of ``title`` in a marisa trie of "title<US>QID" keys (the sitelinks of a KB
    build, ``xned.export.kb.wikidata.TitleMap``, and the titles it writes beside the KB);
    the smallest when several items share the title."""
    hits = trie.keys(title + TITLE_SEP)
    return min(hits).rsplit(TITLE_SEP, 1)[1] if hits else None


def title_key(title: str) -> str:
    """Wikipedia's title rule: underscores are spaces, runs of white space collapse, and the
    first letter is case-insensitive (stored upper-case)."""
    t = re.sub(r"\s+", " ", title.replace("_", " ")).strip()
    return t[:1].upper() + t[1:] if t else t


def load_titles(path: Path | None) -> dict[str, str]:
    """``title<TAB>QID`` rows (a header line, blank lines and ``#`` comments are skipped) as
    ``title_key(title) -> QID``. When two titles share a key, the first row wins. A row that
    is not a title and a QID is an ``InputError`` naming the line."""
    if path is None:
        return {}
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                qid = parts[1].strip() if len(parts) >= 2 else ""
                if len(line) > MAX_TITLE_LINE_CHARS or not QID_RE.fullmatch(qid):
                    if lineno == 1:
                        continue  # a header
                    raise InputError(f"{path}:{lineno}: expected title<TAB>QID, got {line.strip()[:80]!r}")
                out.setdefault(title_key(parts[0]), qid)
    except UnicodeDecodeError as exc:
        raise InputError(f"Title map {path} is not UTF-8 ({exc}).") from None
    except OSError as exc:
        raise InputError(f"Title map {path} cannot be read ({exc.strerror or exc}).") from None
    return out
