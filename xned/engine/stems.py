"""Stemmed alias keys: inflected names found through the Snowball stemmers.

Names in running text carry case endings and articles the alias tables do not hold
("Deutschlands", "Stockholms", "Vereinigten Staaten", "Frantziara"). The hand-written endings
of ``xned.engine.morph`` cover a few languages and one ending at a time; here a maintained
stemmer (Snowball, through PyStemmer's C library) maps every word of the mention's key and
every word of the language's alias keys to its stem, and a mention whose exact, folded and
case-ending lookups found nothing gets the candidates of the aliases with its stem key:
"vereinigten staaten" -> "vereinigt staat" <- "vereinigte staaten".

The stem keys are written at KB build beside each table of a language listed in
``STEM_LANGS`` (``stem.json`` names the algorithm; ``stem.marisa`` holds the stem keys that
differ from their key, ``stem_offsets.npy`` and ``stem_targets.npy`` the key ids of each, as
for folded keys), so the run time only stems the mention, with the table's algorithm. A
stem lookup ranks after every precise step (exact, folded, middle dots, umlauts, case
endings), so an exact match still wins; a table without stem files (a bundle built before
them) skips the step. ``xned kb index --stems`` adds them to a bundle.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

#: ISO 639-1 code -> Snowball algorithm: the languages whose tables get stem keys at KB
#: build unless ``--stem-langs`` says otherwise. Measured on the dev sets (README, "Stem
#: keys"): German and English gain (fused +0.5 / +0.2 honest, +0.5 / +0.9 with the full
#: supplement, NIL precision up), French does not (0.0, and -0.3 where the gold is a
#: candidate), so French and the other Romance languages, whose names do not decline, are
#: left out; the others listed are languages whose names take case or definite endings.
STEM_LANGS: dict[str, str] = {
    "de": "german",
    "en": "english",
    "nl": "dutch",
    "da": "danish",
    "sv": "swedish",
    "nb": "norwegian",
    "nn": "norwegian",
    "no": "norwegian",
    "fi": "finnish",
    "et": "estonian",
    "hu": "hungarian",
    "tr": "turkish",
    "eu": "basque",
    "lt": "lithuanian",
    "pl": "polish",
    "cs": "czech",
    "ru": "russian",
    "sr": "serbian",
    "el": "greek",
    "ga": "irish",
    "hy": "armenian",
    "ro": "romanian",
}
#: Every Snowball algorithm by language code (``--stem-langs`` may pick any of these).
ALGORITHMS: dict[str, str] = {
    **STEM_LANGS,
    "ar": "arabic",
    "ca": "catalan",
    "eo": "esperanto",
    "es": "spanish",
    "fa": "persian",
    "fr": "french",
    "hi": "hindi",
    "id": "indonesian",
    "it": "italian",
    "ne": "nepali",
    "pt": "portuguese",
    "ta": "tamil",
    "yi": "yiddish",
}
MIN_STEM_KEY = 3  # characters: a shorter stem key finds nothing


@lru_cache(maxsize=64)
def stemmer(algorithm: str) -> Any:
    """The Snowball stemmer ``algorithm`` (one of ``ALGORITHMS``' values)."""
    import Stemmer  # PyStemmer: imported on the first stemmed lookup, not with xned

    return Stemmer.Stemmer(algorithm)


def stem_key(algorithm: str, key: str) -> str | None:
    """The stem key of a normalized key (each space-separated word stemmed), or None when
    it is shorter than ``MIN_STEM_KEY``."""
    stem = " ".join(stemmer(algorithm).stemWords(key.split(" ")))
    return stem if len(stem) >= MIN_STEM_KEY else None
