"""The one Wikipedia title rule and the one title-map reader, shared by the KB build, the
training contexts and the gold data."""

import pytest

from xned.errors import InputError
from xned.titles import load_titles, title_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [("paris", "Paris"), ("New_York_City", "New York City"), ("  Rio   de\tJaneiro ", "Rio de Janeiro"), ("", "")],
)
def test_title_key(raw, key):
    assert title_key(raw) == key


def test_the_first_row_of_a_key_wins_and_headers_and_comments_are_skipped(tmp_path):
    path = tmp_path / "titles.tsv"
    path.write_text("title\tqid\n# a comment\nAu\tQ678231\nau\tQ307110\nNew_York\tQ60\n\n", encoding="utf-8")
    assert load_titles(path) == {"Au": "Q678231", "New York": "Q60"}


def test_a_bad_row_names_its_line(tmp_path):
    path = tmp_path / "titles.tsv"
    path.write_text("Paris\tQ90\nBerlin\tnot-a-qid\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"titles.tsv:2: expected title<TAB>QID"):
        load_titles(path)


def test_a_missing_or_binary_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot be read"):
        load_titles(tmp_path / "none.tsv")
    bad = tmp_path / "bin.tsv"
    bad.write_bytes(b"Paris\tQ90\n\xff\xfe\tQ1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_titles(bad)


def test_the_kb_build_and_the_gold_data_resolve_a_title_alike(tmp_path):
    # The KB build (Wikipedia anchors) and the gold reader must map a title to the same QID.
    from xned.evalsets import read_jsonl
    from xned.export.wikimedia import wiki_title

    titles = tmp_path / "titles.tsv"
    titles.write_text("Rio de  Janeiro\tQ8678\n", encoding="utf-8")
    mapping = load_titles(titles)
    assert mapping[wiki_title("Rio_de_Janeiro")] == "Q8678"
    doc = tmp_path / "d.en.jsonl"
    doc.write_text(
        '{"id": "d", "lang": "en", "text": "Rio de Janeiro", '
        '"mentions": [{"start": 0, "end": 14, "text": "Rio de Janeiro", "title": "Rio_de_Janeiro"}]}\n',
        encoding="utf-8",
    )
    (d,) = list(read_jsonl(doc, mapping))
    assert d.gold[0].qid == "Q8678"
