import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from xned.engine.normalize import dehyphenate, fold, normalize


def test_nfkc_casefold_and_width():
    assert normalize("  ＴＯＫＹＯ\u3000Tower ") == "tokyo tower"
    assert normalize("ﾄｳｷｮｳ") == "トウキョウ"  # half-width katakana -> full-width
    assert normalize("Straße") == "strasse"
    assert normalize("ΣΊΣΥΦΟΣ") == normalize("σίσυφοσ")


def test_dehyphenate_line_end_hyphens_only():
    assert dehyphenate(normalize("Brau-\nnau")) == ["braunau", "brau-nau", "brau nau"]
    assert dehyphenate(normalize("Baden-Württemberg")) == []  # an ordinary hyphen
    assert dehyphenate(normalize("Paris - London")) == []  # a dash between words
    assert dehyphenate("new york") == []


def test_never_transliterates():
    assert normalize("Москва") == "москва"
    assert normalize("東京") == "東京"
    assert fold("москва") is None
    assert fold("東京") is None


def test_fold_latin_only():
    assert fold("zürich") == "zurich"
    assert fold("são paulo") == "sao paulo"
    assert fold("łódź") == "lodz"
    assert fold("zurich") is None  # unchanged -> no fallback key
    assert fold("zürich москва") is None  # mixed script: no folding


@given(st.text(max_size=40))
def test_normalize_idempotent(s):
    n = normalize(s)
    assert normalize(n) == n
    assert n == n.strip()
    assert "  " not in n


@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll")), max_size=20))
def test_fold_output_has_no_combining_marks(s):
    f = fold(normalize(s))
    if f is not None:
        assert not any(unicodedata.category(ch) == "Mn" for ch in unicodedata.normalize("NFD", f))


WHITESPACE = [chr(c) for c in range(0x3001) if chr(c).isspace()]  # every one below U+3000 and it


@given(
    st.text(alphabet=st.sampled_from([*WHITESPACE, "a", "B", "¬", "\u00ad", "É", "・", "ﬁ", "Ａ", "-"]), max_size=30)
)
def test_normalize_is_the_regex_formulation(text):
    """``normalize`` splits with ``str.split``; it must give what the regex did: NFKC,
    casefold, every run of ``\\s`` one space, stripped, hyphenation marks removed."""
    import re

    want = unicodedata.normalize("NFKC", re.sub(r"¬\s*|\u00ad", "", text)).casefold()
    assert normalize(text) == re.sub(r"\s+", " ", want).strip()
