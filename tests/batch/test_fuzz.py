"""Fuzzing the reader and the linker: whatever the input lines hold, the output has one
record per non-blank input line, in order, and is valid in every format."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xned.cli.main import main

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(max_size=60) | st.sampled_from(["Tokyo and Berlin", "\ud800 Paris", "", "   ", "x" * 300])
docs = st.fixed_dictionaries(
    {"text": texts | json_values},
    optional={
        "id": json_values,
        "lang": st.sampled_from(["en", "EN", "pt-BR", "zz", "english", ""]) | json_values,
        "mentions": st.lists(st.tuples(st.integers(-3, 40), st.integers(-3, 40)), max_size=3) | json_values,
    },
)


def _line(value) -> bytes:
    if isinstance(value, bytes):
        return value.replace(b"\n", b" ").replace(b"\r", b" ")
    return json.dumps(value).encode("utf-8", "surrogatepass")


# JSON nested deeper than the interpreter's stack: json.loads raises RecursionError, not a
# JSONDecodeError; it must still be one bad record, never the end of the batch
deep = st.integers(900, 20_000).map(lambda n: b'{"text": "Tokyo", "x": ' + b"[" * n + b"]" * n + b"}")
lines = st.lists(st.binary(max_size=40) | docs | json_values | deep, min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines)
def test_every_input_line_gets_one_record_in_every_format(tmp_path_factory, bundle_path, items):
    tmp = tmp_path_factory.mktemp("fuzz")
    src = tmp / "in.jsonl"
    raw = [_line(x) for x in items]
    src.write_bytes(b"\n".join(raw) + b"\n")
    expected = sum(1 for r in raw if r.strip())
    for fmt in ("jsonl", "json", "tsv"):
        out = tmp / f"out.{fmt}"
        argv = ["link", "-i", str(src), "-o", str(out), "-f", fmt, "-b", str(bundle_path), "-q", "--force"]
        code = main(argv + ["--input-format", "jsonl", "--given-spans"])
        assert code in (0, 1)
        text = out.read_text(encoding="utf-8")
        if fmt == "jsonl":
            records = [json.loads(x) for x in text.split("\n") if x]  # (not splitlines: U+0085 is text)
            assert len(records) == expected
            assert (code == 1) == any("error" in r for r in records)
        elif fmt == "json":
            assert len(json.loads(text)) == expected
        else:
            assert text.startswith("doc_id\t")
