import json

import numpy as np
import pytest

from xned import Linker
from xned.errors import BundleError, InputError
from xned.export.manifest import update_manifest
from xned.types import Document, Mention


def qids(links):
    return [(lk.text, lk.qid) for lk in links]


def test_links_multilingual_mentions(linker):
    assert qids(linker.link("Paris Hilton stayed in Tokyo.", "en")) == [
        ("Paris Hilton", "Q47899"),
        ("Tokyo", "Q1490"),
    ]
    assert qids(linker.link("パリス・ヒルトンは東京に泊まった。", "ja")) == [
        ("パリス・ヒルトン", "Q47899"),
        ("東京", "Q1490"),
    ]
    assert qids(linker.link("El presidente visitó Berlín.", "es")) == [("Berlín", "Q64")]


def test_context_disambiguates_ambiguous_alias(linker):
    planet = linker.link("Mercury is the smallest planet closest to the Sun", "en", candidates=True)
    metal = linker.link("Mercury is a liquid metal element", "en", candidates=True)
    assert planet[0].qid == "Q308"
    assert metal[0].qid == "Q925"
    assert {c.qid for c in planet[0].candidates} == {"Q308", "Q925", "Q15869"}


def test_accent_insensitive_fallback(linker):
    assert qids(linker.link("Vuelo a Zurich", "es")) == [("Zurich", "Q3127")]


def test_cross_lingual_fallback_for_latin_names_in_japanese(linker):
    # no Japanese alias spells it: the English table's key is found, with all its entities
    links = linker.link("Washingtonに行った", "ja", mentions=[(0, 10)], candidates=True)
    assert {c.qid for c in links[0].candidates} == {"Q23", "Q61", "Q1223"}


def test_given_spans_ned_mode_and_nil(linker):
    text = "Paris and Gotham are cities."
    links = linker.link(text, "en", mentions=[Mention(0, 5), (10, 16)])
    assert links[0].qid == "Q90"  # the city of the most likely four: its prior and "cities"
    assert links[1].qid is None and links[1].text == "Gotham"


def test_no_entity_sentence_gives_no_links(linker):
    assert linker.link("nothing to see here at all", "en") == []


def test_threshold_turns_links_into_nil(bundle_path):
    strict = Linker.load(bundle_path, threshold=1.0)
    links = strict.link("Paris Hilton stayed in Tokyo.", "en")
    assert len(links) == 2 and all(lk.qid is None for lk in links)


def test_deterministic_and_confidence_in_range(linker):
    text = "Washington met Jordan in Georgia near the Amazon."
    a = linker.link(text, "en", candidates=True)
    b = linker.link(text, "en", candidates=True)
    assert a == b
    for lk in a:
        assert 0.0 <= lk.score <= 1.0
        scores = [c.score for c in lk.candidates]
        assert scores == sorted(scores, reverse=True)


def test_batch_keeps_order_and_records_errors(linker):
    docs = [
        Document("Tokyo", "en", "a"),
        {"id": "b", "text": "", "lang": "en"},
        "Berlín y Madrid",
        Document("Paris", "xx", "d"),
        Document("Tokyo", "english", "e"),
    ]
    out = list(linker.link_batch(docs, lang="es"))
    assert [r.id for r in out] == ["a", "b", None, "d", "e"]
    assert out[0].links[0].qid == "Q1490"
    assert "Empty text" in out[1].error
    assert [lk.qid for lk in out[2].links] == ["Q64", "Q2807"]
    assert "No alias table for language 'xx'" in out[3].error and "has: de, en, es" in out[3].error
    assert "Invalid language tag 'english'" in out[4].error


def test_span_out_of_range(linker):
    with pytest.raises(InputError, match=r"Mention span \[3, 99\) is out of range for a text of 5 characters"):
        linker.link("Paris", "en", mentions=[(3, 99)])


def test_huge_document_refused(linker):
    with pytest.raises(InputError, match="over the limit of 1,000,000"):
        linker.link("Paris " * 2_000_000, "en")


def test_batching_gives_same_result_as_single(linker):
    texts = [f"Doc {i}: Paris Hilton visited Berlin and Madrid." for i in range(70)]
    batched = [r.links for r in linker.link_batch(texts, lang="en")]
    single = [tuple(linker.link(t, "en")) for t in texts[:3]]
    assert batched[:3] == single


def test_long_document_uses_windows(linker):
    filler = " ".join(["the"] * 300)
    text = f"Freddie Mercury sang. {filler} Mercury is the smallest planet closest to the Sun"
    links = linker.link(text, "en")
    assert [lk.qid for lk in links] == ["Q15869", "Q308"]


def test_missing_file_named(bundle_copy):
    (bundle_copy / "kb" / "aliases" / "es" / "priors.npy").unlink()
    with pytest.raises(BundleError, match=r"priors.npy is missing; rebuild"):
        Linker.load(bundle_copy)


@pytest.mark.parametrize(("key", "value"), [("max_length", "abc"), ("chunk_tokens", 12.5), ("batch_tokens", True)])
def test_a_bad_number_in_the_encoder_config_is_a_bundle_error_naming_it(bundle_copy, key, value):
    import json

    from xned.export.manifest import update_manifest

    cfg_path = bundle_copy / "encoder" / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg[key] = value
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    update_manifest(bundle_copy)
    with pytest.raises(BundleError, match=f"{key} = {value!r} is not a"):
        Linker.load(bundle_copy, use_corrections=False)


def test_corrupted_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="manifest.json is corrupted"):
        Linker.load(bundle_copy)


def test_size_mismatch_and_verify(bundle_copy):
    p = bundle_copy / "kb" / "entities" / "text.bin"
    data = bytearray(p.read_bytes())
    data[0] ^= 0x01  # same size, different bytes
    p.write_bytes(bytes(data))
    Linker.load(bundle_copy)  # sizes match: loads
    with pytest.raises(BundleError, match="text.bin does not match its sha256"):
        Linker.load(bundle_copy, verify=True)
    p.write_bytes(bytes(data[:-3]))
    with pytest.raises(BundleError, match="text.bin has .* bytes, the manifest says"):
        Linker.load(bundle_copy)


def test_wrong_format_version(bundle_copy):
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["format_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format_version 99"):
        Linker.load(bundle_copy)


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(BundleError, match="Bundle directory not found"):
        Linker.load(tmp_path / "nope")


def test_kb_arrays_are_memory_mapped(linker):
    t = linker.kb.base.tables["en"]
    assert isinstance(t.cands, np.memmap)
    assert isinstance(linker.kb.base.entities.popularity, np.memmap)


def test_priors_sum_to_at_most_one(linker):
    for table, _ in linker.kb.tables_for(None):
        for kid in range(len(table)):
            _, pri = table.by_id(kid)
            assert float(pri.sum()) <= 1.0 + 1e-5
            assert list(pri) == sorted(pri, reverse=True)


def test_provider_fallback_warns(bundle_path):
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider not available"):
        lk = Linker.load(bundle_path, providers=["CUDAExecutionProvider"])
    assert lk.link("Tokyo", "en")[0].qid == "Q1490"


def test_bundle_without_vectors_still_links(bundle_copy):
    for name in ("vectors.npy", "vector_scales.npy"):
        (bundle_copy / "kb" / "entities" / name).unlink()
    from xned.engine.bundle import read_manifest, write_manifest

    write_manifest(bundle_copy, read_manifest(bundle_copy).data)
    lk = Linker.load(bundle_copy)
    assert lk.link("Chicago", "en")[0].qid == "Q1297"  # prior decides


def test_copy_is_independent(bundle_copy, bundle_path):
    """Tests that damage their bundle_copy must not reach the shared fixture (no hard links)."""
    target = next(p for p in sorted((bundle_copy / "kb").rglob("*.npy")))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        Linker.load(bundle_copy, verify=True, use_corrections=False)
    Linker.load(bundle_path, verify=True, use_corrections=False)  # the original is intact


def test_single_candidates_skip_the_encoder_only_when_the_context_cannot_change_the_decision(bundle_path):
    from xned.engine.scoring import Scorer

    lk = Linker.load(bundle_path, threads=1)
    calls = []
    real = lk.encoder.embed_mentions
    lk.encoder.embed_mentions = lambda texts, spans: calls.append(sum(map(len, spans))) or real(texts, spans)
    text = "Tokyo is big."
    assert [lk.qid for lk in lk.link(text, "en", mentions=[(0, 5)])] == ["Q1490"]
    assert calls == []  # one candidate, strong prior: linked without encoding
    # A scorer where the context decides: the same mention is encoded, and a context that
    # contradicts the only candidate can make it NIL.
    lk.scorer = Scorer(weights={**Scorer().weights, "sim": 40.0}, bias=-30.0, threshold=0.5)
    lk.link(text, "en", mentions=[(0, 5)])
    assert calls == [1]
    decided = lk.link(text, "en", mentions=[(0, 5)])[0]
    full = Linker.load(bundle_path, threads=1)
    full.scorer = lk.scorer
    assert decided == full.link(text, "en", mentions=[(0, 5)])[0]


def test_stream_passes_pre_errored_records_through_in_order(linker):
    from xned.types import DocResult

    bad = DocResult("x", None, "", error="unreadable line", line=3)
    out = list(linker.link_stream([{"id": "a", "text": "Tokyo", "lang": "en"}, bad, "Berlin"], lang="en"))
    assert [r.id for r in out] == ["a", "x", None]
    assert out[1] is bad and out[0].links[0].qid == "Q1490" and out[2].links[0].qid == "Q64"


def test_any_exception_in_one_document_stays_with_it(linker, monkeypatch):
    real = linker.stage.candidates

    def boom(doc, ments, given):
        if "Berlin" in doc.text:
            raise KeyError(-36)
        return real(doc, ments, given)

    monkeypatch.setattr(linker.stage, "candidates", boom)
    out = list(linker.link_batch(["Tokyo", "Berlin", "Paris Hilton"], lang="en"))
    assert out[0].links and out[2].links
    assert out[1].error == "unexpected KeyError: -36"


def test_language_tags_are_normalized(linker):
    for tag in ("EN", "en-US", "en_GB", "En-Latn-US"):
        assert linker.link("Tokyo", tag)[0].qid == "Q1490"
    with pytest.raises(InputError, match="Invalid language tag"):
        linker.link("Tokyo", "english")


def test_detection_without_language_uses_the_union_trie_and_finds_the_same_spans(linker):
    from xned.engine.mentions import Detector

    keys, folds = linker.kb.detection_tries(None)
    assert len(keys) == 1  # the key index, not one trie per table
    tables = [t for t, _ in linker.kb.tables_for(None)]
    per_table = Detector(
        [t.keys for t in tables],
        lambda k: linker.kb.link_probability(None, k),
        fold_tries=[t.fold_keys for t in tables],
    )
    for text in ("Paris Hilton flew from Zürich to Tokyo and Berlín.", "東京とベルリン", "Tokio y Berlin y Paris"):
        assert linker.finder.rules_for(None).detect(text) == per_table.detect(text)
    assert [lk.qid for lk in linker.link("Tokyo and Berlin")] == ["Q1490", "Q64"]


def test_a_language_never_hides_a_name_that_lookup_finds(linker):
    """'lisbon' and 'jerusalem' are only in the English table: with lang='es' lookup falls
    back to it, so detection must find them too (it used to scan es + mul only)."""
    assert "lisbon" not in {t.lang: t for t, _ in linker.kb.tables_for(None)}["es"].keys
    text = "Viajamos de Lisbon a Jerusalem en mayo."
    spans = [(text.index(w), text.index(w) + len(w)) for w in ("Lisbon", "Jerusalem")]
    detected = linker.link(text, lang="es")
    assert [(lk.start, lk.end) for lk in detected] == spans
    assert [lk.qid for lk in detected] == [lk.qid for lk in linker.link(text, lang="es", mentions=spans)]
    assert [lk.qid for lk in detected] == [linker.lookup(w, "es")[0][0] for w in ("Lisbon", "Jerusalem")]


def test_manifest_paths_must_stay_inside_the_bundle(bundle_copy, tmp_path):
    from xned.engine.bundle import read_manifest, write_manifest

    outside = tmp_path / "secret.txt"
    outside.write_text("secret", encoding="utf-8")
    data = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    data["files"]["../secret.txt"] = {"size": 6, "sha256": "0" * 64}
    (bundle_copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="outside the bundle"):
        Linker.load(bundle_copy)
    del data["files"]["../secret.txt"]
    (bundle_copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    (bundle_copy / "kb" / "link.txt").symlink_to(outside)
    write_manifest(bundle_copy, {k: v for k, v in read_manifest(bundle_copy).data.items() if k != "files"})
    with pytest.raises(BundleError, match="leads outside the bundle"):
        Linker.load(bundle_copy)


def test_a_directory_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.npy").write_bytes(b"x" * 10)
    (bundle_copy / "kb" / "extra").symlink_to(elsewhere, target_is_directory=True)
    data = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    data["files"]["kb/extra/data.npy"] = {"size": 10, "sha256": "0" * 64}
    (bundle_copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="kb/extra leads outside the bundle"):
        Linker.load(bundle_copy)


def test_same_size_corruption_of_candidates_is_an_error_naming_the_file(bundle_copy):
    path = bundle_copy / "kb" / "aliases" / "en" / "cands.npy"
    arr = np.load(path)
    arr[:] = 10_000_000  # same size, indices out of range
    np.save(path, arr)
    lk = Linker.load(bundle_copy)
    res = next(lk.link_batch(["Tokyo"], lang="en"))
    assert res.error is not None and "cands.npy" in res.error and "corrupted" in res.error


def test_a_name_found_only_inside_the_mention_takes_the_partial_weight(bundle_copy):
    """ "Greater Tokyo Metropolis" has no alias of its own; lookup finds Tokyo inside it. With
    a strongly negative ``partial`` weight that mention falls to NIL while "Tokyo" itself,
    same candidate, same context, stays linked; with ``partial`` 0 both link."""
    text = "Greater Tokyo Metropolis grew. Tokyo grew."
    spans = [(0, 24), (31, 36)]

    def links(partial: float) -> list[str | None]:
        scoring = {"weights": {"log_prior": 1.0, "partial": partial}, "bias": 3.0, "threshold": 0.5}
        (bundle_copy / "scoring.json").write_text(json.dumps(scoring), encoding="utf-8")
        update_manifest(bundle_copy)  # only what the manifest lists is loaded
        return [lk.qid for lk in Linker.load(bundle_copy).link(text, "en", mentions=spans)]

    assert links(0.0) == ["Q1490", "Q1490"]
    assert links(-20.0) == [None, "Q1490"]
