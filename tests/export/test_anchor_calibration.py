"""Calibration on Wikipedia anchors (the default bundle's scoring.json): gold rule and fit."""

from __future__ import annotations

import bz2
import json

from xned import Linker
from xned.export.experts.anchors import anchor_docs, calibrate_on_anchors, gold_for
from xned.export.training_docs import UNRESOLVED

PAGES = [
    ("Paris, France", None, "#REDIRECT [[Paris]]", "Paris"),
    (
        "Travel",
        None,
        "The trip went from [[Paris, France|Paris]] to [[Jordan]], where fans of "
        "[[Michael Jordan|Jordan]] met. The novel [[Paris (novel)|Paris]] was read on the way, "
        "bought on [[Amazon]]. [[Nowhere Land]] is not named.",
        None,
    ),
]


def _xml(tmp_path, pages, dbname="enwiki"):
    parts = [f"<mediawiki><siteinfo><dbname>{dbname}</dbname></siteinfo>"]
    for title, _, text, redirect in pages:
        red = f'<redirect title="{redirect}" />' if redirect else ""
        parts.append(f"<page><title>{title}</title><ns>0</ns>{red}<revision><text>{text}</text></revision></page>")
    parts.append("</mediawiki>")
    path = tmp_path / "sample.xml.bz2"
    path.write_bytes(bz2.compress("".join(parts).encode()))
    return path


def test_gold_rule(linker):
    amb = frozenset({"company"})
    assert gold_for(linker, "Jordan", "Jordan", "en", ambiguous=amb) == "Q810"  # the label
    assert gold_for(linker, "Jordan", "Michael Jordan", "en", ambiguous=amb) == "Q41421"
    assert gold_for(linker, "Paris", "Paris (novel)", "en", ambiguous=amb) is None  # named by no candidate: NIL
    assert gold_for(linker, "Amazon", "Amazon", "en", ambiguous=amb) == UNRESOLVED  # only a brand-like type
    assert gold_for(linker, "Amazon", "Amazon", "en", ambiguous=frozenset()) == "Q3884"
    assert gold_for(linker, "Zzyzx", "Zzyzx", "en", ambiguous=amb) == UNRESOLVED  # no candidates at all
    assert gold_for(linker, "París", "Paris", "es", ambiguous=amb) == "Q90"


def test_anchor_docs_follow_redirects_and_keep_offsets(linker, tmp_path):
    docs = list(anchor_docs(linker, _xml(tmp_path, PAGES), ambiguous=frozenset({"company"})))
    assert len(docs) == 1
    d = docs[0]
    got = [(d.text[s:e], q) for s, e, q in d.spans]
    assert got == [
        ("Paris", "Q90"),  # "Paris, France" redirects to "Paris", the city's label
        ("Jordan", "Q810"),
        ("Jordan", "Q41421"),
        ("Paris", None),
        ("Amazon", UNRESOLVED),
        ("Nowhere Land", UNRESOLVED),
    ]


def test_calibrate_on_anchors_writes_a_scoring_the_linker_loads(bundle_copy, tmp_path):
    text = " ".join(
        [
            "[[Paris]] is the capital of France.",
            "The Trojan prince [[Paris (mythology)|Paris]] abducted Helen.",
            "[[Paris (novel)|Paris]] is a novel.",
            "[[Germany]] is a country in Europe.",
            "[[Tokyo]] is the capital of Japan.",
            "[[Jordan]] is a country.",
            "[[Jordan (film)|Jordan]] is a film.",
            "[[Mercury (planet)|Mercury]] is a planet.",
        ]
    )
    pages = [(f"Page {i}", None, text, None) for i in range(5)]
    result = calibrate_on_anchors(bundle_copy, [_xml(tmp_path, pages)])
    counts = result["fit"]["anchors"]
    assert counts["linked"] > 0 and counts["nil"] > 0
    scoring = json.loads((bundle_copy / "scoring.json").read_text())
    linker = Linker.load(bundle_copy, verify=True)  # the manifest covers scoring.json
    assert linker.scorer.weights == scoring["weights"]
    assert linker.scorer.threshold == scoring["threshold"]
    prov = json.loads((bundle_copy / "manifest.json").read_text())["provenance"]["scoring"]
    assert prov["wikipedia_anchors"] == ["sample.xml.bz2"]
