"""Case endings of suffixing languages: the stem that leaves a known ending."""

from __future__ import annotations

from xned.engine.morph import MIN_STEM, split_inflected, suffixes


def test_the_longest_stem_that_leaves_a_known_ending():
    eu = suffixes("eu")
    assert split_inflected("frantziara", ["fran", "frantzia"], eu) == "frantzia"  # -ra: "to France"
    assert split_inflected("bilboko", ["bilbo"], eu) == "bilbo"  # -ko: "of Bilbao"
    assert split_inflected("berlins", ["berlin"], suffixes("de")) == "berlin"
    assert split_inflected("oulussa", ["oulu"], suffixes("fi")) == "oulu"  # -ssa: "in Oulu"


def test_only_listed_languages_and_real_stems():
    assert suffixes("fr") == frozenset() and suffixes(None) == frozenset()
    assert split_inflected("parisen", ["paris"], suffixes("fr")) is None  # French words stay words
    assert split_inflected("eus", ["eu"], suffixes("de")) is None  # a stem under MIN_STEM is no stem
    assert MIN_STEM == 3
    assert split_inflected("berlinx", ["berlin"], suffixes("de")) is None  # "x" is no German ending
