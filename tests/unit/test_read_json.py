"""The one loader of a bundle's JSON files: every failure is an error naming the file."""

import pytest

from xned.engine.bundle import read_json_object
from xned.errors import BundleError, KBBuildError


def test_a_json_object_is_returned(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"entities": 3}', encoding="utf-8")
    assert read_json_object(path, "KB metadata") == {"entities": 3}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "KB metadata .*meta.json is missing"),
        (b'{"entities": ', "meta.json is corrupted"),
        (b"\xff\xfe{}", "meta.json is corrupted"),
        (b"[1, 2]", "meta.json must hold a JSON object"),
        (b"{" + b" " * 2048 + b"}", "larger than 1024 bytes"),
    ],
)
def test_each_failure_names_the_file(tmp_path, content, message):
    path = tmp_path / "meta.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        read_json_object(path, "KB metadata", max_bytes=1024)


def test_the_error_type_and_hint_are_the_callers(tmp_path):
    with pytest.raises(KBBuildError, match="missing; rebuild the KB"):
        read_json_object(tmp_path / "build.json", "Build record", error=KBBuildError, hint="rebuild the KB")


def test_bench_reads_documents_as_xned_link_does(tmp_path):
    import pytest

    from xned.bench import load_corpus
    from xned.errors import InputError

    good = tmp_path / "docs.jsonl"
    good.write_text('{"id": "a", "text": "Tokyo", "lang": "en"}\n\n{"text": "Paris"}\n', encoding="utf-8")
    text = tmp_path / "lines.txt"
    text.write_text("Tokyo and Paris\nBerlin\n", encoding="utf-8")
    docs = load_corpus([good, text], limit=10)
    assert [d["text"] for d in docs] == ["Tokyo", "Paris", "Tokyo and Paris", "Berlin"]
    assert docs[0]["id"] == "a" and "line" not in docs[0]
    assert len(load_corpus([good, text], limit=3)) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Tokyo"}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(InputError, match="bad.jsonl:2"):
        load_corpus([bad], limit=10)
