"""The embedded default bundle (xned/assets/default): loads, validates, links, is a real encoder."""

import pytest

from xned.config import default_bundle_path
from xned.engine.bundle import read_manifest

DEFAULT = default_bundle_path()
pytestmark = pytest.mark.skipif(
    not (DEFAULT / "manifest.json").is_file(), reason=f"no default bundle at {DEFAULT} (run make bundle)"
)

CASES = [
    ("es", "Hablo con Telefónica desde México.", {"Telefónica": "Q160229", "México": "Q96"}),
    ("zh", "他会说日语，在麦当劳工作。", {"日语": "Q5287", "麦当劳": "Q38076"}),
    ("ja", "彼は英語を話し、スターバックスで働いている。", {"英語": "Q1860", "スターバックス": "Q37158"}),
    ("eu", "Euskara Frantzia eta Alemania artean.", {"Euskara": "Q8752", "Frantzia": "Q142", "Alemania": "Q183"}),
    ("ar", "يتحدث العربية ويعيش في اليابان.", {"العربية": "Q13955", "اليابان": "Q17"}),
    ("de", "Er zog von Österreich in die Schweiz.", {"Österreich": "Q40", "Schweiz": "Q39"}),
]


@pytest.fixture(scope="module")
def default_linker():
    from xned import Linker

    return Linker.load(verify=True, threads=2)


@pytest.fixture(scope="module")
def ranking_linker():
    """The default bundle with no NIL threshold: which entity wins, whatever the confidence."""
    from xned import Linker

    return Linker.load(threads=2, threshold=0.0)


def test_default_bundle_is_within_size_limits():
    files = read_manifest(DEFAULT).files
    assert max(f["size"] for f in files.values()) < 95_000_000
    assert sum(f["size"] for f in files.values()) < 150_000_000


@pytest.mark.parametrize(("lang", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_links_multilingual_sentences(ranking_linker, lang, text, expected):
    """Detection and cross-script lookup find the entity and rank it first."""
    got = {link.text: link.qid for link in ranking_linker.link(text, lang=lang)}
    for mention, qid in expected.items():
        assert got.get(mention) == qid, f"{mention!r} in {text!r}: got {got}"


def test_sentence_without_known_entities_gives_nothing(default_linker):
    assert default_linker.link("She drank her tea slowly and read a long novel.", lang="en") == []


def test_given_span_of_unknown_name_is_nil(default_linker):
    text = "Zorblax Quentworth arrived."
    links = default_linker.link(text, lang="en", mentions=[(0, 18)])
    assert len(links) == 1 and links[0].qid is None


def test_encoder_retrieves_translations_far_above_random_control():
    pytest.importorskip("onnx")
    from xned.export.encoder.retrieval import check

    report = check(DEFAULT / "encoder", threads=2)
    enc, ctrl = report["encoder"], report["control"]
    assert enc["sentences"]["mean"] >= 0.9 and enc["names"]["mean"] >= 0.8
    for probe in ("sentences", "names"):
        assert enc[probe]["mean"] - ctrl[probe]["mean"] >= 0.5, report


def test_scoring_is_fitted_on_wikipedia_anchors(default_linker):
    from xned.engine.scoring import DEFAULT_WEIGHTS

    manifest = read_manifest(DEFAULT)
    prov = manifest.data["provenance"]["scoring"]
    assert "scoring.json" in manifest.files
    assert prov["anchors"]["linked"] > 100 and prov["anchors"]["nil"] > 100
    assert default_linker.scorer.weights != DEFAULT_WEIGHTS  # not the hand-set fallback


def test_a_single_candidate_the_context_contradicts_falls_to_nil(default_linker, ranking_linker):
    """The name "Albert" has one candidate in the default bundle, a Czech supermarket chain. Detected,
    the mention is the whole name "Albert Einstein", which reads as a person's: the supermarket,
    found only through the name inside it and no person, is no candidate of it. Given "Albert"
    alone as the span, the supermarket is the only candidate, and the context rules it out: its
    confidence is far below a country's."""
    text = "Albert Einstein was born in Ulm, in the Kingdom of Württemberg in the German Empire."
    detected = {lk.text: lk for lk in ranking_linker.link(text, lang="en", candidates=True)}
    assert "Albert" not in detected
    assert detected["Albert Einstein"].qid is None and not detected["Albert Einstein"].candidates
    ranked = {lk.text: lk for lk in ranking_linker.link(text, lang="en", mentions=[(0, 6)])}
    assert ranked["Albert"].qid == "Q9144241"  # the only candidate ...
    linked = {lk.text: lk for lk in default_linker.link(text, lang="en", mentions=[(0, 6)])}
    assert linked["Albert"].qid is None  # ... and the context rules it out
    sure = default_linker.link("Saudi Arabia is a country in Western Asia.", lang="en")[0]
    assert sure.qid == "Q851" and sure.score > ranked["Albert"].score + 0.2


def test_the_trap_set_links_few_pieces_of_names_and_the_names_alone(default_linker):
    """benchmarks/traps.jsonl end to end: people named like countries and companies ("Coco
    Chanel", "Henry Ford") are linked through a piece of their name in few sentences (5.1%
    measured, 9.4% before whole names side by side; the target is 5%: German and Arabic are
    left, see docs/results/traps.md), and the same names standing alone are linked in at
    least 95%."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("traps", Path(__file__).parents[2] / "benchmarks" / "traps.py")
    assert spec is not None and spec.loader is not None
    traps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(traps)
    failures: list[str] = []
    report = traps.evaluate(default_linker, traps.load(traps.FILE), given=False, failures=failures)["ALL"]
    assert report["traps"] >= 100 and report["controls_in_kb"] >= 60
    assert report["pieces_linked_rate"] <= 0.06, failures
    assert report["controls_linked_rate"] >= 0.95, failures
