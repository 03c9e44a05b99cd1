"""Word experts trained on the tiny bundle: training, storage, linking, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xned import Linker
from xned.errors import InputError
from xned.export.experts.fit import fit_softmax
from xned.export.experts.train import train_experts
from xned.export.training_docs import in_holdout

PLANET = [
    "{m} is the smallest planet closest to the Sun in the Solar System.",
    "The probe flew past {m} and then on toward the Sun.",
    "Astronomers watched {m} cross the face of the Sun as a planet.",
    "{m} orbits the Sun faster than any other planet.",
]
METAL = [
    "{m} is a liquid metal element used in old thermometers.",
    "The chemist measured the {m} in the metal sample.",
    "Fish can hold traces of {m}, a toxic liquid metal element.",
    "{m} is the only metal element that is liquid at room temperature.",
]
SINGER = [
    "{m} sang with the rock band Queen for twenty years.",
    "The British singer {m} wrote songs for Queen.",
]


def _docs(tmp_path, n_copies=3):
    rows = []
    for qid, templates in (("Q308", PLANET), ("Q925", METAL), ("Q15869", SINGER)):
        for c in range(n_copies):
            for i, t in enumerate(templates):
                text = t.format(m="Mercury")
                s = text.index("Mercury")
                rows.append(
                    {
                        "id": f"train/{qid}-{c}-{i}",
                        "lang": "en",
                        "text": text,
                        "mentions": [{"start": s, "end": s + 7, "text": "Mercury", "qid": qid, "title": None}],
                    }
                )
    # a NIL mention and a title-only gold that no title map resolves
    rows.append(
        {
            "id": "train/nil",
            "lang": "en",
            "text": "Gotham is not a real place.",
            "mentions": [{"start": 0, "end": 6, "text": "Gotham", "qid": None, "title": None}],
        }
    )
    path = tmp_path / "train.en.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_writes_experts_that_the_linker_uses(bundle_copy, tmp_path):
    data = _docs(tmp_path)
    summary = train_experts(bundle_copy, [data], holdout=0.0, seed=1)
    st = summary["experts"]
    assert st["covered_entities"] == 3
    assert st["models"] >= 1 and st["classes"] >= 3
    meta = json.loads((bundle_copy / "experts" / "meta.json").read_text())
    assert meta["source_langs"] == ["en"] and meta["dim"] == 32
    assert np.load(bundle_copy / "experts" / "weights.npy", allow_pickle=False).dtype == np.int8
    hub = np.load(bundle_copy / "experts" / "hubness.npy", allow_pickle=False)
    assert hub.shape == (38,) and np.all(hub > -1) and np.all(hub <= 1) and hub.std() > 0

    linker = Linker.load(bundle_copy, variant="experts", verify=True)
    assert linker.experts is not None
    assert linker.experts.model_for("en", "mercury") >= 0
    assert linker.experts.model_for("en", "tokyo") < 0  # one candidate: no expert
    # the source language's expert serves the same string in another language
    model = linker.experts.model_for("en", "mercury")
    assert linker.experts.model_for("ja", "mercury") == model
    # a candidate set reached without the alias key finds the expert of its entities
    pair = np.array([linker.kb.index("Q925"), linker.kb.index("Q308")], np.int32)
    assert linker.experts.model_for("ja", "水星", pair) == model
    assert linker.experts.model_for("ja", "水星", pair[:1]) < 0  # one candidate: none
    assert linker.experts.model_for("ja", "水星") < 0
    planet = linker.link("Mercury is a planet near the Sun.", "en", mentions=[(0, 7)], candidates=True)[0]
    metal = linker.link("The metal element Mercury is liquid.", "en", mentions=[(18, 25)], candidates=True)[0]
    assert planet.qid == "Q308" and metal.qid == "Q925"
    feats = linker.analyze([{"text": "Mercury is a planet.", "lang": "en", "mentions": [(0, 7)]}])[0].mentions[0]
    assert feats.hub is not None and len(feats.hub) == len(feats.ents)
    probs = {c.qid: c.expert for c in planet.candidates}
    assert probs["Q308"] > max(p for q, p in probs.items() if q != "Q308" and p is not None)


UNSEEN = [  # contexts of the two senses that share no sentence with the training documents
    ("Q308", "A telescope photographed Mercury as it moved in front of the Sun."),
    ("Q925", "Old barometers held Mercury, a heavy toxic liquid metal."),
    ("Q308", "The spacecraft reached an orbit around Mercury, a planet near the Sun."),
    ("Q925", "Mercury is a toxic metal element that stays liquid."),
]


def test_experts_decide_unseen_contexts_that_the_prior_gets_wrong(bundle_copy, tmp_path):
    train_experts(bundle_copy, [_docs(tmp_path)], holdout=0.0, seed=1)

    def right(variant: str) -> int:
        lk = Linker.load(bundle_copy, variant=variant, use_corrections=False)
        hits = 0
        for qid, text in UNSEEN:
            s = text.index("Mercury")
            best = lk.link(text, "en", mentions=[(s, s + 7)], candidates=True)[0].candidates[0]
            hits += best.qid == qid
        return hits

    assert right("experts") == len(UNSEEN)
    assert right("prior") < len(UNSEEN)  # one sense's prior: the experts are what decides


def test_training_is_deterministic_for_a_seed(bundle_copy, tmp_path):
    data = _docs(tmp_path)
    train_experts(bundle_copy, [data], holdout=0.0, seed=3)
    first = (bundle_copy / "experts" / "weights.npy").read_bytes()
    train_experts(bundle_copy, [data], holdout=0.0, seed=3)
    assert (bundle_copy / "experts" / "weights.npy").read_bytes() == first


def test_holdout_calibrates_scoring(bundle_copy, tmp_path):
    data = _docs(tmp_path, n_copies=6)
    summary = train_experts(bundle_copy, [data], holdout=0.3, seed=0)
    cal = summary["calibration"]
    assert cal["fit"]["mentions"] > 0 and 0.0 <= cal["threshold"] <= 0.95
    scoring = json.loads((bundle_copy / "scoring.json").read_text())
    assert set(scoring["weights"]) >= {"log_prior", "sim", "expert"}
    linker = Linker.load(bundle_copy, verify=True)
    assert linker.scorer.weights == pytest.approx(scoring["weights"])
    assert not (bundle_copy / "experts.calibration").exists()


def test_no_source_language_documents_is_a_clear_error(bundle_copy, tmp_path):
    data = _docs(tmp_path)
    with pytest.raises(InputError, match="No training documents in language"):
        train_experts(bundle_copy, [data], source_langs=["de"])


def test_holdout_split_is_deterministic_and_sized():
    ids = [f"doc{i}" for i in range(2000)]
    held = [i for i in ids if in_holdout(i, 0.2, seed=0)]
    assert held == [i for i in ids if in_holdout(i, 0.2, seed=0)]
    assert 300 < len(held) < 500
    assert held != [i for i in ids if in_holdout(i, 0.2, seed=1)]
    assert not any(in_holdout(i, 0.0) for i in ids)


def test_fit_softmax_separates_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    x = np.concatenate([c + 0.3 * rng.normal(size=(20, 16)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(3), 20)
    w, b = fit_softmax(x, y, 3, np.ones(len(y), np.float32))
    assert ((x @ w.T + b).argmax(1) == y).mean() > 0.95
