import json

import pytest
from typer.testing import CliRunner

from xned.cli.main import main


@pytest.fixture()
def run(bundle_path):
    def _run(*args, input=None, bundle=True):
        runner = CliRunner()
        argv = list(args) + (["--bundle", str(bundle_path)] if bundle else [])
        with runner.isolation(input=input) as (out, err, *_):
            code = main(argv)
            return code, out.getvalue().decode(), err.getvalue().decode()

    return _run


def test_link_argument_pretty(run):
    code, out, err = run("link", "Paris Hilton stayed in Tokyo.", "--lang", "en")
    assert code == 0, err
    assert "Q47899" in out and "Q1490" in out and "Paris Hilton" in out


def test_link_argument_jsonl_shape(run):
    code, out, _ = run("link", "Paris Hilton stayed in Tokyo.", "--lang", "en", "-f", "jsonl")
    assert code == 0
    rec = json.loads(out)
    assert rec["lang"] == "en"
    assert [(m["text"], m["qid"], m["start"], m["end"]) for m in rec["mentions"]] == [
        ("Paris Hilton", "Q47899", 0, 12),
        ("Tokyo", "Q1490", 23, 28),
    ]
    assert set(rec["mentions"][0]) >= {"start", "end", "text", "qid", "label", "score"}


def test_link_stdin_text_lines_tsv(run):
    code, out, _ = run("link", "-", "-f", "tsv", "--lang", "es", input="Berlín\n\nMadrid y Tokio\n")
    assert code == 0
    rows = [r.split("\t") for r in out.strip().splitlines()]
    assert rows[0][:5] == ["doc_id", "start", "end", "mention", "qid"]
    assert [(r[0], r[3], r[4]) for r in rows[1:]] == [
        ("stdin:1", "Berlín", "Q64"),
        ("stdin:3", "Madrid", "Q2807"),
        ("stdin:3", "Tokio", "Q1490"),
    ]


def test_link_jsonl_file_given_spans_one_record_per_doc(run, tmp_path):
    docs = [
        {
            "id": "d1",
            "lang": "en",
            "text": "Paris and Gotham",
            "mentions": [
                {"start": 0, "end": 5, "text": "Paris", "qid": "Q90"},
                {"start": 10, "end": 16, "text": "Gotham", "qid": None},
            ],
        },
        {
            "id": "d2",
            "lang": "ja",
            "text": "東京に行った",
            "mentions": [{"start": 0, "end": 2, "text": "東京", "qid": "Q1490"}],
        },
        {"id": "d3", "lang": "en", "text": "Paris", "mentions": [{"start": 0, "end": 50}]},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    out_path = tmp_path / "out.jsonl"
    code, out, err = run("link", "-i", str(src), "-f", "jsonl", "--given-spans", "-o", str(out_path))
    assert code == 1  # one document failed, reported, not dropped
    assert "1 of 3 documents could not be linked" in err
    recs = [json.loads(x) for x in out_path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in recs] == ["d1", "d2", "d3"]
    assert [m["qid"] for m in recs[0]["mentions"]][1] is None
    assert recs[1]["mentions"][0]["qid"] == "Q1490"
    assert "out of range" in recs[2]["error"]
    assert out == ""


def test_link_json_format_is_one_array(run):
    code, out, _ = run("link", "-", "-f", "json", "--lang", "en", input="Tokyo\nBerlin\n")
    assert code == 0
    data = json.loads(out)
    assert [d["mentions"][0]["qid"] for d in data] == ["Q1490", "Q64"]


def test_invalid_utf8_line_is_reported_not_dropped(run, tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(b"Tokyo\nBer\xfflin\nMadrid\n")
    code, out, err = run("link", "-i", str(src), "-f", "jsonl", "--lang", "en")
    recs = [json.loads(x) for x in out.splitlines()]
    assert len(recs) == 3
    assert "bad.txt:2: not valid UTF-8 (byte 0xff at byte 3)" in recs[1]["error"]
    assert recs[2]["mentions"][0]["qid"] == "Q2807"
    assert code == 1


def test_malformed_jsonl_line(run):
    code, out, _ = run("link", "-", "-f", "jsonl", "--input-format", "jsonl", input='{"text": "Tokyo"}\n{oops\n')
    recs = [json.loads(x) for x in out.splitlines()]
    assert "stdin:2: malformed JSON" in recs[1]["error"]
    assert code == 1


def test_empty_text(run):
    code, _, err = run("link", "   ")
    assert code == 1
    assert err.startswith("Error: Empty text")


def test_unknown_language(run):
    code, _, err = run("link", "Tokyo", "--lang", "sw")
    assert code == 1
    assert "No alias table for language 'sw'" in err and "xned kb build" in err


def test_missing_bundle_and_debug(run, tmp_path):
    code, _, err = run("link", "Tokyo", "--bundle", str(tmp_path / "none"), bundle=False)
    assert code == 1 and "Error: Bundle directory not found" in err and "Traceback" not in err
    with pytest.raises(Exception, match="Bundle directory not found"):
        run("link", "Tokyo", "--debug", "--bundle", str(tmp_path / "none"), bundle=False)


def test_both_text_and_input(run, tmp_path):
    code, _, err = run("link", "Tokyo", "-i", str(tmp_path / "x"))
    assert code == 1 and "either a TEXT argument or --input" in err


def test_missing_input_file(run, tmp_path):
    code, _, err = run("link", "-i", str(tmp_path / "missing.jsonl"))
    assert code == 1 and "missing.jsonl not found" in err


def test_huge_document_via_cli(run, tmp_path):
    src = tmp_path / "big.txt"
    src.write_text("Tokyo " * 1_800_000 + "\nBerlin\n", encoding="utf-8")  # ~10.8 MB line
    code, out, err = run("link", "-i", str(src), "-f", "jsonl", "--lang", "en")
    recs = [json.loads(x) for x in out.splitlines()]
    assert "over the limit of 1,000,000" in recs[0]["error"]
    assert recs[1]["mentions"][0]["qid"] == "Q64"
    assert code == 1


def test_info(run):
    code, out, _ = run("info")
    assert code == 0
    assert "entities    38" in out and "ja: " in out
    code, out, _ = run("info", "--json", "--verify")
    assert json.loads(out)["entities"] == 38


def test_kb_lookup(run):
    code, out, _ = run("kb", "lookup", "Washington", "--lang", "en")
    assert code == 0
    assert {line.split("\t")[0] for line in out.splitlines()[1:]} == {"Q23", "Q61", "Q1223"}


def test_kb_build_cli(run, tmp_path, bundle_path):
    src = tmp_path / "e.tsv"
    src.write_text("Q1\tthing\tFoo Bar\ta test entity\tx:1\tes:Fu Bar\n", encoding="utf-8")
    out = tmp_path / "b"
    code, _, err = run(
        "kb",
        "build",
        str(src),
        "--bundle",
        str(out),
        "--encoder",
        str(bundle_path / "encoder"),
        bundle=False,
    )
    assert code == 0, err
    code, stdout, err = run("link", "Fu Bar", "--lang", "es", "-f", "jsonl", "--bundle", str(out), bundle=False)
    assert code == 0, err
    assert json.loads(stdout)["mentions"][0]["qid"] == "Q1"


def test_bench_runs(run):
    code, out, _ = run("bench", "--repeat", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["documents"] == 6 and data["mentions_linked"] > 0
    assert data["workers_1_mentions_per_s"] > 0 and data["workers_2_mentions_per_s"] > 0
    assert len(data["workers_2_peak_rss_mb_per_process"]) >= 3  # the parent and two workers
    assert data["prior_only_floor_mentions_per_s"] > 0 and data["cold_start_s"] > 0


def test_version(run):
    code, out, _ = run("--version", bundle=False)
    assert code == 0 and out.startswith("xned ")


def test_bundle_built_without_an_encoder_serves_lookups(run, tmp_path):
    src = tmp_path / "e.tsv"
    src.write_text("Q1\tthing\tFoo Bar\ta test entity\tx:1\tes:Fu Bar\n", encoding="utf-8")
    out = tmp_path / "b"
    code, _, err = run("kb", "build", str(src), "--bundle", str(out), bundle=False)
    assert code == 0, err
    code, stdout, err = run("kb", "lookup", "Fu Bar", "--lang", "es", "--bundle", str(out), bundle=False)
    assert code == 0, err
    assert "Q1" in stdout
    code, stdout, err = run("kb", "info", "--bundle", str(out), bundle=False)
    assert code == 0, err
    code, stdout, err = run("link", "Fu Bar", "--lang", "es", "-f", "jsonl", "--bundle", str(out), bundle=False)
    assert code == 0, err
    assert json.loads(stdout)["mentions"][0]["qid"] == "Q1"


def test_build_warnings_are_summarised_per_kind(run, tmp_path):
    src = tmp_path / "e.tsv"
    src.write_text("".join(f"Q{i}\tQ5\tName {i}\t\t\ten:Name {i}|tokipona:jan {i}\n" for i in range(1, 500)))
    code, _, err = run("kb", "build", str(src), "--bundle", str(tmp_path / "b"), "--no-vectors", bundle=False)
    assert code == 0, err
    assert "skipped/warned bad_lang: 499" in err
    assert err.count("tokipona") == 3 and "e.tsv:1:" in err and "e.tsv:4:" not in err  # three examples, not 499 lines


def test_serve_refuses_a_public_bind_without_a_token(run, monkeypatch):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    monkeypatch.delenv("XNED_TOKEN", raising=False)
    code, out, err = run("serve", "--host", "0.0.0.0", "--port", "8765")
    assert code == 1 and err.startswith("Error:") and "--token" in err and "Traceback" not in err
