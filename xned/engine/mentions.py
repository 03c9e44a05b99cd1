"""End-to-end mention detection: greedy longest match of alias keys over token boundaries.

Text is cut into tokens: runs of letters/digits for spaced scripts, single characters for
CJK ideographs and kana (so a match may end at any character there), single punctuation
marks otherwise. Each token is normalized on its own and the tokens are re-joined with one
space where the text had white space, nothing otherwise; this is exactly how alias keys are
normalized, so ``trie.prefixes`` on that string finds every alias starting at a token.
A match must end on a token end (or, for suffixing languages, leave only a case ending of
its last token: "Frantziara"); the longest match wins and scanning resumes after it.

Filter (so common words are not linked): a key must be at least 2 characters, hold a letter
and be no company's legal form on its own ("Inc", "AG"); a key whose
link probability is known must reach ``min_link_prob``; where it is unknown, a match in a
cased script must contain an upper-case letter or a digit (capitalization cue).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from xned.engine.normalize import CJK_CLASS, KATAKANA_CLASS, fold, normalize
from xned.engine.person import is_legal_form

# A katakana run is one word; so is a word broken at a line end by OCR'd hyphenation
# ("Frank¬\nreich", as ``normalize`` joins it) or holding soft hyphens.
_WORD = rf"[^\W_{CJK_CLASS}]+"
TOKEN_RE = re.compile(rf"[{KATAKANA_CLASS}]+|[{CJK_CLASS}]|{_WORD}(?:(?:¬\s*|\u00ad){_WORD})*|\S")
MAX_KEY_CHARS = 80


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    key: str


def tokenize(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN_RE.finditer(text)]


def joined_keys(text: str, toks: list[tuple[int, int]], keyfn) -> tuple[str, list[int], dict[int, int]]:
    """Normalized string of the whole text, start position of each token in it, and a map
    from end positions to token indices."""
    parts: list[str] = []
    starts: list[int] = []
    ends: dict[int, int] = {}
    pos = 0
    prev_end = None
    for i, (s, e) in enumerate(toks):
        if prev_end is not None and s > prev_end:  # tokens cover all but white space
            parts.append(" ")
            pos += 1
        piece = keyfn(text[s:e])
        starts.append(pos)
        parts.append(piece)
        pos += len(piece)
        ends[pos] = i
        prev_end = e
    return "".join(parts), starts, ends


def _cased_without_capital(surface: str) -> bool:
    has_cased = False
    for ch in surface:
        if ch.isdigit() or ch.isupper() or ch.istitle():
            return False
        if ch.lower() != ch.upper():
            has_cased = True
    return has_cased


class _TextState:
    """What one ``Detector.detect`` call learns about its text: the link probability of each
    key asked (a long text repeats its names), and the words it writes in lower case."""

    def __init__(self, text: str, toks: list[tuple[int, int]]):
        self.link_prob: dict[str, float] = {}
        self._text, self._toks = text, toks

    @cached_property
    def lower(self) -> set[str]:
        """Built on first need: only a capitalized match of unknown link probability asks."""
        return {w for s, e in self._toks if (w := self._text[s:e]).islower()}


class Detector:
    """Scans text with one or more alias tries (``keys`` objects supporting ``prefixes``)."""

    def __init__(
        self,
        tries: Iterable,
        link_prob,
        *,
        fold_tries: Iterable = (),
        min_link_prob: float = 0.05,
        endings: frozenset[str] = frozenset(),
        names: Any = None,
    ):
        self.tries = list(tries)
        self.endings = endings  # case endings a match may leave at the end of its last token
        self.fold_tries = list(fold_tries)
        self.link_prob = link_prob  # callable key -> float (NaN unknown)
        self.min_link_prob = min_link_prob
        self.names = names  # ``person.NameRuns``: matches widened to whole names (None: as matched)

    def detect(self, text: str) -> list[Span]:
        toks = tokenize(text)
        if not toks:
            return []
        state = _TextState(text, toks)
        out = self._scan(text, toks, normalize, self.tries, state)
        # Accent-insensitive pass (folded text against folded keys and plain keys) for the
        # characters not already covered by an exact match.
        covered = {i for sp in out for i in range(sp.start, sp.end)}
        extra = [
            sp
            for sp in self._scan(
                text,
                toks,
                lambda t: fold(normalize(t)) or normalize(t),
                self.fold_tries + self.tries,
                state,
            )
            if not any(i in covered for i in range(sp.start, sp.end))
        ]
        found = sorted(out + extra, key=lambda sp: sp.start)
        if self.names is None or not found:
            return found
        keys = {(sp.start, sp.end): sp.key for sp in found}
        wide = self.names.extend(text, toks, [(sp.start, sp.end) for sp in found])
        return [Span(s, e, keys.get((s, e)) or normalize(text[s:e])) for s, e in wide]

    def _scan(self, text: str, toks: list[tuple[int, int]], keyfn, tries: list, state: _TextState) -> list[Span]:
        joined, starts, ends = joined_keys(text, toks, keyfn)
        spans: list[Span] = []
        i = 0
        n = len(toks)
        while i < n:
            s_tok, e_tok = toks[i]
            if not text[s_tok].isalnum():
                i += 1
                continue
            p = starts[i]
            window = joined[p : p + MAX_KEY_CHARS]
            best: tuple[int, str] | None = None
            for trie in tries:
                for key in trie.prefixes(window):
                    j = ends.get(p + len(key))
                    if j is None and self.endings:
                        j = self._inflected_end(joined, ends, p + len(key))
                    if j is None or (best is not None and j <= best[0]):
                        continue
                    if self._accept(key, text[s_tok : toks[j][1]], state):
                        best = (j, key)
            if best is None:
                i += 1
                continue
            j, key = best
            spans.append(Span(s_tok, toks[j][1], key))
            i = j + 1
        return spans

    def _inflected_end(self, joined: str, ends: dict[int, int], pos: int) -> int | None:
        """Token index ending where a case ending that starts at ``pos`` ends, if any."""
        if pos == 0 or not joined[pos - 1].isalnum():
            return None
        for length in range(1, 9):
            j = ends.get(pos + length)
            if j is not None:
                return j if joined[pos : pos + length] in self.endings else None
        return None

    def _accept(self, key: str, surface: str, state: _TextState) -> bool:
        if len(key) < 2 or is_legal_form(key) or not any(ch.isalpha() for ch in key):
            return False  # "Inc" alone (its company is no alias) names no one; nor does a number
        lp = state.link_prob.get(key)
        if lp is None:
            lp = state.link_prob[key] = self.link_prob(key)
        if lp == lp:  # known
            return lp >= self.min_link_prob
        if _cased_without_capital(surface):
            return False
        # A capitalized word that the same text also writes in lower case is a common word
        # at a sentence start or in a title ("The", "This", "Store"), not a name; acronyms
        # ("US" beside "us") and names of several words are not judged this way.
        return not (surface.istitle() and surface.isalpha() and surface.lower() in state.lower)
