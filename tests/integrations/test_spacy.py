"""The spaCy component on blank pipelines (no model download)."""

from __future__ import annotations

import pickle

import pytest

spacy = pytest.importorskip("spacy", reason="the spacy extra is not installed")

TEXTS = [
    "The capital Paris lies on the Seine in France.",
    "Madrid y Barcelona están en España.",
    "東京は日本の首都です。",
]


@pytest.fixture()
def nlp(bundle_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("xned", config={"bundle": str(bundle_path), "candidates": True})  # by entry point name
    return nlp


def test_detects_and_links_without_ner(nlp):
    doc = nlp(TEXTS[0] + " " + TEXTS[1])
    got = {e.text: e.kb_id_ for e in doc.ents}
    assert got["Paris"] == "Q90" and got["France"] == "Q142" and got["Madrid"] == "Q2807"
    paris = next(e for e in doc.ents if e.text == "Paris")
    assert paris.label_ == "ENTITY" and paris._.xned_label == "Paris" and "Seine" in paris._.xned_description
    assert 0 < paris._.xned_score <= 1 and paris._.xned_candidates[0]["qid"] == "Q90"


def test_links_the_entities_an_earlier_component_found(bundle_path):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "GPE", "pattern": "Paris"}, {"label": "PERSON", "pattern": "Zorblax Quentworth"}])
    nlp.add_pipe("xned", config={"bundle": str(bundle_path)})
    doc = nlp("The capital Paris lies on the Seine. Zorblax Quentworth lives there, not in France.")
    assert [(e.text, e.label_, e.kb_id_) for e in doc.ents] == [
        ("Paris", "GPE", "Q90"),
        ("Zorblax Quentworth", "PERSON", "NIL"),
    ]  # France is not linked: the ruler did not mark it


def test_pipe_with_two_processes_matches_one(nlp):
    pickle.dumps(nlp.get_pipe("xned"))  # picklable without its loaded bundle
    one = [[(e.text, e.kb_id_) for e in d.ents] for d in nlp.pipe(TEXTS)]
    two = [[(e.text, e.kb_id_) for e in d.ents] for d in nlp.pipe(TEXTS, n_process=2, batch_size=1)]
    assert one == two and one[1] == [("Madrid", "Q2807"), ("Barcelona", "Q1492"), ("España", "Q29")]


def test_links_off_token_boundaries_stay_in_the_doc_extension(nlp):
    doc = nlp(TEXTS[2])  # the blank tokenizer keeps the Japanese sentence as one token
    assert not doc.ents
    assert {(m["text"], m["qid"]) for m in doc._.xned_links} == {("東京", "Q1490"), ("日本", "Q17")}
