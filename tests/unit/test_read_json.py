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
