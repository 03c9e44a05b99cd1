"""The trained mention detector on the tiny bundle: training with the export tools, the
bundle files, linking with ``detection="model"`` and the evaluation's side-by-side columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from xned import Linker
from xned.cli.main import app, main
from xned.engine import layout as L
from xned.errors import InputError

pytest.importorskip("torch")

from xned.export.detector.train import train_detector  # noqa: E402

# the tiny encoder's tokenizer knows ~400 lower-cased words: names and contexts come from them
NAMES = ["Mercury", "Paris", "Berlin", "Tokyo", "Priam", "Lamar", "Seattle", "Helen", "Zurich"]
TEMPLATES = [
    "{m} visited the city with the singer.",
    "She was with {m} in the house.",
    "They played the game in {m} on the island.",
    "The singer {m} was in the white house.",
]


def _train_file(tmp_path):
    rows = []
    for n in NAMES:
        for i, t in enumerate(TEMPLATES):
            text = t.format(m=n)
            s = text.index(n)
            rows.append(
                {
                    "id": f"{n}-{i}",
                    "lang": "en",
                    "text": text,
                    "mentions": [{"start": s, "end": s + len(n), "text": n, "qid": None}],
                }
            )
    path = tmp_path / "names.en.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 4), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import shutil

    from tests.conftest import FIXTURE

    tmp = tmp_path_factory.mktemp("det")
    bundle = tmp / "bundle"
    shutil.copytree(FIXTURE, bundle)
    summary = train_detector(bundle, [_train_file(tmp)], epochs=30, hidden=64, threads=1)
    return bundle, summary


def test_training_writes_a_verified_detector(trained):
    bundle, summary = trained
    assert summary["docs"] == len(NAMES) * len(TEMPLATES) * 4
    assert summary["pieces"]["B"] > 0 and summary["pieces"]["O"] > summary["pieces"]["B"]
    w1 = np.load(bundle / L.DETECTOR / L.DetectorDir.W1, allow_pickle=False)
    assert w1.dtype == np.float32 and w1.shape == (32, 64)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert f"{L.DETECTOR}/{L.DetectorDir.W1}" in manifest["files"]
    assert manifest["provenance"]["detector"]["source_langs"] == ["en"]
    assert CliRunner().invoke(app, ["bundle", "verify", str(bundle)]).exit_code == 0


def test_model_detection_finds_the_names_it_learned(trained):
    bundle, _ = trained
    lk = Linker.load(bundle, detection="model", use_corrections=False)
    assert lk.tagger is not None
    # a context it was not trained on; Lamar is in no alias table, so only the trained
    # detector finds it (a mention with no candidate: NIL)
    text = "The singer Lamar visited the house."
    links = {x.text: x.qid for x in lk.link(text, "en")}
    assert "Lamar" in links and links["Lamar"] is None
    assert not {"singer", "house", "The"} & set(links)
    links = {x.text: x.qid for x in lk.link("She was with the singer in Paris.", "en")}
    assert links.get("Paris") in {q for q, _, _ in lk.lookup("Paris", "en")}
    rules = Linker.load(bundle, detection="rules", use_corrections=False)
    assert rules.tagger is None
    assert "Lamar" not in [x.text for x in rules.link(text, "en")]


def test_model_detection_needs_a_detector(bundle_path):
    with pytest.raises(InputError, match="detector train"):
        Linker.load(bundle_path, detection="model")
    with pytest.raises(InputError, match="Unknown detection"):
        Linker.load(bundle_path, detection="neural")
    assert Linker.load(bundle_path, detection="auto", use_corrections=False).tagger is None


def test_eval_reports_both_detections(trained, tmp_path):
    bundle, _ = trained
    data = tmp_path / "dev.en.jsonl"
    text = "They played the game in Zurich on the island."  # one candidate: Q3127
    s = text.index("Zurich")
    data.write_text(
        json.dumps({"id": "d", "lang": "en", "text": text, "mentions": [{"start": s, "end": s + 6, "qid": "Q3127"}]})
        + "\n"
    )
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["eval", str(data), "--bundle", str(bundle), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "model e2e F1" in res.output
    row = json.loads(out.read_text())["datasets"]["ALL (micro)"]
    assert row["det_r_model"] == 1.0 and row["e2e_r_model"] == 1.0
    assert row["detected_per_s_model"] > 0


def test_cli_train_without_source_documents(trained, tmp_path):
    bundle, _ = trained
    args = ["detector", "train", str(_train_file(tmp_path)), "-b", str(bundle), "--source-lang", "de"]
    with CliRunner().isolation() as (out, err, *_):
        code = main(args)
        msg = err.getvalue().decode()
    assert code == 1
    assert msg.startswith("Error: No training documents in language(s) de") and "--source-lang" in msg
    assert "Traceback" not in msg


def test_bench_measures_both_detections(trained, tmp_path):
    from xned.bench import run_bench

    bundle, _ = trained
    texts = ["She was with Lamar in the house.", "The singer Priam visited Paris and Berlin."]
    corpus = tmp_path / "corpus.jsonl"
    # given spans in the corpus are ignored here: detection is measured
    corpus.write_text("".join(json.dumps({"text": t, "lang": "en", "mentions": [[0, 3]]}) + "\n" for t in texts))
    res = run_bench(bundle, [corpus], repeat=1, workers=1)
    for name in ("model", "rules"):
        lk = Linker.load(bundle, detection=name, use_corrections=False)
        expected = sum(len(lk.link(t, "en")) for t in texts)
        assert res[f"warm_{name}_detection_mentions"] == expected
        assert res[f"warm_{name}_detection_mentions_per_s"] > 0
    assert res["warm_model_detection_mentions"] != res["warm_rules_detection_mentions"]
