"""Evaluation input formats: canonical JSONL and NIF Turtle read to the same gold."""

from __future__ import annotations

import json

import pytest

from tests.conftest import shared_data
from xned.errors import InputError
from xned.evalsets import read_dataset
from xned.evaluate import evaluate

NIF = """@prefix itsrdf: <http://www.w3.org/2005/11/its/rdf#> .
@prefix nif: <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

<http://example.org/doc/1#char=0,29> a nif:Context ;
    nif:beginIndex "0"^^xsd:nonNegativeInteger ;
    nif:endIndex "29"^^xsd:nonNegativeInteger ;
    nif:isString "Paris Hilton stayed in Tokyo." .

<http://example.org/doc/1#char=0,12> a nif:Phrase ;
    nif:beginIndex "0"^^xsd:nonNegativeInteger ;
    nif:endIndex "12"^^xsd:nonNegativeInteger ;
    nif:referenceContext <http://example.org/doc/1#char=0,29> ;
    itsrdf:taIdentRef <http://www.wikidata.org/entity/Q47899> .

<http://example.org/doc/1#char=23,28> a nif:Phrase ;
    nif:beginIndex "23"^^xsd:nonNegativeInteger ;
    nif:endIndex "28"^^xsd:nonNegativeInteger ;
    nif:referenceContext <http://example.org/doc/1#char=0,29> ;
    itsrdf:taIdentRef <https://en.wikipedia.org/wiki/Tokyo> .
"""


def test_nif_reads_qids_and_titles(tmp_path, linker):
    pytest.importorskip("rdflib")
    path = tmp_path / "tiny.ttl"
    path.write_text(NIF, encoding="utf-8")
    titles = tmp_path / "titles.tsv"
    titles.write_text("Tokyo\tQ1490\n", encoding="utf-8")
    from xned.titles import load_titles

    docs = read_dataset(path, load_titles(titles))
    assert len(docs) == 1
    gold = [(g.text, g.qid) for g in docs[0].gold]
    assert gold == [("Paris Hilton", "Q47899"), ("Tokyo", "Q1490")]
    report = evaluate(linker, [path], titles=titles)
    row = report["datasets"]["tiny"]
    assert row["mentions"] == 2 and row["recall"] == 1.0 and row["acc_fused"] == 1.0


def test_unknown_format_is_an_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown evaluation format"):
        read_dataset(p, {})


def test_real_nif_sample_reads():
    pytest.importorskip("rdflib")
    path = shared_data("dumps", "wikidata_json_samples_opentapioca", "eval", "istex_test.ttl")
    docs = read_dataset(path, {})
    assert len(docs) > 50
    assert sum(len(d.gold) for d in docs) > 100
    for d in docs:
        for g in d.gold:
            assert d.text[g.start : g.end] == g.text


def test_unresolvable_gold_counts_as_wrong_never_as_right(tmp_path, linker):
    """A title-only gold that no title map resolves, on a mention with no candidates, used to
    count as correct (None == None) and could push accuracy in candidates above 100%."""
    path = tmp_path / "unresolved.jsonl"
    doc = {
        "id": "d1",
        "lang": "en",
        "text": "Zorblax met Paris.",
        "mentions": [{"start": 0, "end": 7, "title": "Zorblax Quentworth"}, {"start": 12, "end": 17, "qid": "Q90"}],
    }
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    stats = evaluate(linker, [path], end_to_end=False)["datasets"]["unresolved"]
    assert stats["in_kb"] == 2 and stats["unresolved"] == 1
    for v in ("prior", "similarity", "experts", "fused"):
        assert stats[f"acc_{v}"] <= 0.5  # at most the resolvable mention is right
        assert stats[f"acc_cand_{v}"] <= 1.0


def test_end_to_end_reports_detection_and_link_precision_recall(tmp_path, linker):
    path = tmp_path / "e2e.jsonl"
    text = "Paris and Berlin met in Tokyo."
    detected = [(x.start, x.end, x.qid) for x in linker.link(text, lang="en")]
    assert len(detected) >= 2
    (s0, e0, q0), (s1, e1, _) = detected[0], detected[1]
    # gold: the first detected span with its link, the second span with another entity, and
    # a span detection does not find (NIL gold counts for detection, not for linking)
    mentions = [
        {"start": s0, "end": e0, "qid": q0},
        {"start": s1, "end": e1, "qid": "Q1"},
        {"start": 10, "end": 13, "qid": None},
    ]
    path.write_text(json.dumps({"id": "d", "lang": "en", "text": text, "mentions": mentions}) + "\n", encoding="utf-8")
    row = evaluate(linker, [path], end_to_end=True)["datasets"]["e2e"]
    n_det, n_links = len(detected), sum(q is not None for _, _, q in detected)
    assert row["det_p"] == pytest.approx(round(2 / n_det, 4)) and row["det_r"] == pytest.approx(round(2 / 3, 4))
    assert row["e2e_p"] == pytest.approx(round(1 / n_links, 4)) and row["e2e_r"] == pytest.approx(0.5)
