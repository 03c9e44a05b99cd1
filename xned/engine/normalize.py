"""Alias-key normalization.

``normalize``: NFKC (folds full-width/half-width forms, compatibility ideographs and
ligatures), then Unicode casefold, then whitespace runs collapsed to one space.
Scripts are never transliterated: Cyrillic, CJK, Arabic keys stay in their script.

Line-break hyphenation marks of OCR'd text (``¬`` and the whitespace after it, soft
hyphens) are removed first, so "Frank¬\nreich" is "frankreich".

``fold``: an accent-insensitive fallback key for Latin-script strings only (combining
marks removed after canonical decomposition, plus a few letters that do not decompose,
e.g. ``ø``, ``ł``, ``đ``). Returns None for any other script or when nothing changes, so
fallback lookups happen only where they can help.

``dehyphenate``: variants of a key broken at a line end with a plain hyphen ("Brau-\nnau"
normalizes to "brau- nau"): joined, hyphenated, spaced. The plain hyphen is ambiguous
("Baden-\nWürttemberg" keeps it), so these are lookup fallbacks, not normalization.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

#: Scripts written without spaces between words (kana, CJK ideographs incl. extensions and
#: compatibility forms, half-width katakana): one place for the tokenizer and the lookup.
CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff"
_CJK_CHAR = re.compile(f"[{CJK_CLASS}]")


def is_cjk(ch: str) -> bool:
    """Whether the character belongs to a script written without spaces (``CJK_CLASS``)."""
    return _CJK_CHAR.match(ch) is not None


#: Katakana letters and the prolonged sound mark (full and half width). Loanwords and foreign
#: names are written in katakana without spaces, so a run of these is one word: "ボーイング"
#: (Boeing) holds "イン", "エアバス" (Airbus) holds "エア" and "バス", and neither is a mention
#: or a name inside it. The middle dot "・" is not in the class: it separates words.
KATAKANA_CLASS = "\u30a1-\u30fa\u30fc-\u30fe\uff66-\uff9f"
_KATAKANA_CHAR = re.compile(f"[{KATAKANA_CLASS}]")


def inside_katakana_word(text: str, i: int) -> bool:
    """Whether position ``i`` of ``text`` falls between two letters of one katakana word."""
    return 0 < i < len(text) and bool(_KATAKANA_CHAR.match(text[i - 1])) and bool(_KATAKANA_CHAR.match(text[i]))


_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_as_spaces(text: str) -> str:
    """``text`` with its control characters as spaces (a printable string has none: no regex pass)."""
    return text if text.isprintable() else _CONTROL.sub(" ", text)


# Line-break hyphenation of OCR'd text ("Frank¬\nreich") and soft hyphens join the word.
_HYPHENATION = re.compile(r"¬\s*|\u00ad")
# A hyphen ending a word, then whitespace: what "-\n" becomes after normalization.
_BROKEN = re.compile(r"(?<=\w)- (?=\w)")
_EXTRA_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "ŀ": "l", "ŧ": "t"})
# Middle dots and similar name separators (Japanese katakana names, Catalan):
# "ジョン・スミス" should match "ジョンスミス" and "John Smith" style keys.
_DOTS = str.maketrans({"・": " ", "·": " ", "･": " ", "‧": " "})
_DOT = re.compile("[・·･‧]")


def normalize(text: str) -> str:
    """The lookup key of an alias or a mention surface."""
    if "¬" in text or "\u00ad" in text:
        text = _HYPHENATION.sub("", text)
    # str.split() splits at the characters ``\s`` matches, so this is ``_WS.sub(" ", t).strip()``
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=65536)
def _is_latin_letter(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def fold(key: str) -> str | None:
    """Accent-insensitive variant of a normalized key, or None (non-Latin or unchanged)."""
    if key.isascii():  # nothing to strip (the extra folds are all non-ASCII letters)
        return None
    if not any(ch.isalpha() for ch in key):
        return None
    for ch in key:
        if ch.isalpha() and not _is_latin_letter(ch):
            return None
    decomposed = unicodedata.normalize("NFD", key)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    out = unicodedata.normalize("NFC", stripped).translate(_EXTRA_FOLD)
    return out if out != key else None


_UMLAUT_DIGRAPHS = (("ae", "ä"), ("oe", "ö"), ("ue", "ü"))


def umlauts(key: str) -> str | None:
    """German spelling with umlauts written as digraphs ("oesterreich" -> "österreich"), or
    None when the key has no such digraph."""
    out = key
    for a, b in _UMLAUT_DIGRAPHS:
        out = out.replace(a, b)
    return out if out != key else None


def undot(key: str) -> str | None:
    """Key with name-separating middle dots turned into spaces (then collapsed), or None."""
    if _DOT.search(key) is None:
        return None
    out = key.translate(_DOTS)
    return _WS.sub(" ", out).strip()


def dehyphenate(key: str) -> list[str]:
    """Variants of a normalized key with line-end hyphenation ("brau- nau"): joined
    ("braunau"), hyphenated ("baden-württemberg"), spaced ("new york"); empty if none."""
    if "- " not in key or not _BROKEN.search(key):
        return []
    return [_BROKEN.sub(joint, key) for joint in ("", "-", " ")]
