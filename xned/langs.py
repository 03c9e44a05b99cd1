"""Language tags: the one rule every command and the library use.

A tag is reduced to its primary language subtag, lower-cased: ``ES`` -> ``es``,
``pt-BR`` -> ``pt``, ``zh-Hant`` -> ``zh``, ``es_ES`` -> ``es`` (alias tables are per
language, not per region or script). The primary subtag must be 2-3 ASCII letters (ISO 639)
or ``mul`` (names of unstated language).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from xned.errors import InputError


def normalize_lang(tag: object) -> str | None:
    """The primary subtag of a BCP 47 / ISO 639 tag, or None for no tag; ``InputError`` when
    the value is not a language tag."""
    if tag is None:
        return None
    if not isinstance(tag, str):
        raise InputError(f"Language {tag!r} must be a string such as 'es' (got {type(tag).__name__}).")
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary:
        return None
    if not (2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha()):
        raise InputError(f"Invalid language tag {tag!r}: use an ISO 639 code such as 'es', 'pt-BR' or 'zh-Hant'.")
    return primary


def suggest(lang: str, known: Sequence[str], n: int = 5) -> str:
    """A short hint: every known code when there are a few, else the closest ones."""
    if len(known) <= 12:
        return f"has: {', '.join(known)}"
    close = difflib.get_close_matches(lang, list(known), n=n, cutoff=0.3)
    hint = f"closest: {', '.join(close)}; " if close else ""
    return f"{hint}{len(known)} languages in all (xned info lists them)"
