"""Inflection-tolerant lookup for suffixing languages.

Names in German, Basque or Finnish text carry case endings ("Berlins", "Frantziara",
"Bilboko", "Helsingistä"), so the surface is not an alias. When a mention's key has no exact
or accent-folded hit, the alias tables are searched for the longest key that is a prefix
of the mention's key and leaves one of the language's case endings below (at least
``MIN_STEM`` characters kept). Only the languages listed here are affected: the same rule
would turn ordinary French or English words into false links. Consonant gradation (fi:
"Helsinki" -> "Helsingissä") is not undone.
"""

from __future__ import annotations

MIN_STEM = 3

SUFFIXES: dict[str, frozenset[str]] = {
    # German: genitive -s/-es/-ns, dative/plural -n/-en.
    "de": frozenset({"s", "es", "ns", "n", "en"}),
    # Basque: article, ergative, genitive, local cases, comitative, destinative (with the
    # epenthetic -e-/-a- forms after consonants).
    "eu": frozenset(
        {
            "a",
            "ak",
            "k",
            "ek",
            "ren",
            "aren",
            "en",
            "ko",
            "eko",
            "n",
            "an",
            "ean",
            "etan",
            "ra",
            "era",
            "ara",
            "rantz",
            "erantz",
            "tik",
            "etik",
            "atik",
            "rekin",
            "arekin",
            "ri",
            "ari",
            "rentzat",
            "arentzat",
            "z",
            "az",
            "ez",
            "tar",
            "ar",
            "dik",
        }
    ),
    # Finnish: genitive, local and essive/translative cases (vowel-harmony pairs).
    "fi": frozenset(
        {
            "n",
            "ssa",
            "ssä",
            "sta",
            "stä",
            "lla",
            "llä",
            "lta",
            "ltä",
            "lle",
            "ksi",
            "na",
            "nä",
            "an",
            "än",
            "en",
            "in",
            "on",
            "un",
            "yn",
            "hin",
            "seen",
            "a",
            "ä",
            "ta",
            "tä",
        }
    ),
    # Hungarian and Turkish: frequent case endings on names.
    "hu": frozenset(
        {
            "ban",
            "ben",
            "ba",
            "be",
            "ból",
            "ből",
            "ra",
            "re",
            "ról",
            "ről",
            "on",
            "en",
            "ön",
            "nak",
            "nek",
            "t",
            "ot",
            "et",
        }
    ),
    "tr": frozenset(
        {
            "'da",
            "'de",
            "'ta",
            "'te",
            "'dan",
            "'den",
            "'tan",
            "'ten",
            "'a",
            "'e",
            "'ya",
            "'ye",
            "'nin",
            "'nın",
            "'in",
            "'ın",
            "'un",
            "'ün",
            "da",
            "de",
            "dan",
            "den",
            "a",
            "e",
            "ya",
            "ye",
            "nin",
            "nın",
            "in",
            "ın",
        }
    ),
}


def suffixes(lang: str | None) -> frozenset[str]:
    return SUFFIXES.get(lang or "", frozenset())


def split_inflected(key: str, stems: list[str], ends: frozenset[str]) -> str | None:
    """The longest of ``stems`` (prefixes of ``key``) that leaves a known ending, or None."""
    best = None
    for stem in stems:
        if len(stem) >= MIN_STEM and key[len(stem) :] in ends and (best is None or len(stem) > len(best)):
            best = stem
    return best
