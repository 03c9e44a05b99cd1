"""Analyst corrections: taught at once, kept per bundle in the state directory, shared."""

from __future__ import annotations

import json
import multiprocessing
import warnings

import pytest
from typer.testing import CliRunner

from xned import Linker
from xned.cli.main import main
from xned.engine.state import bundle_id
from xned.errors import InputError
from xned.export.manifest import update_manifest

PARTY = "At the party last night Paris wore a silver dress."
PARTY_NEW = "Photographers waited for hours; Paris smiled at them and left."
CAPITAL = "We flew from Washington to Paris and then took the train."


def _span(text, word):
    i = text.index(word)
    return (i, i + len(word))


def _link(lk, text, word, **kw):
    return lk.link(text, lang="en", mentions=[_span(text, word)], **kw)[0]


@pytest.fixture()
def state(tmp_path):
    return tmp_path / "state"


def test_a_correction_flips_the_mention_in_a_new_context(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state)
    assert _link(lk, PARTY_NEW, "Paris").qid == "Q90"  # the prior's choice: the city
    before = lk.link(CAPITAL, lang="en", mentions=[_span(CAPITAL, "Washington")])
    ex = lk.teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    assert (ex.key, ex.qid, ex.mention) == ("paris", "Q47899", "Paris") and "[[Paris]]" in ex.context
    after = _link(lk, PARTY_NEW, "Paris", candidates=True)  # the same linker, at once
    assert (after.qid, after.corrected) == ("Q47899", True)
    assert after.candidates[0].qid == "Q47899"
    # another mention string is untouched, to the last digit
    assert lk.link(CAPITAL, lang="en", mentions=[_span(CAPITAL, "Washington")]) == before
    # a linker loaded later uses it; one loaded without corrections does not
    assert _link(Linker.load(bundle_copy, state=state), PARTY_NEW, "Paris").qid == "Q47899"
    plain = _link(Linker.load(bundle_copy, state=state, use_corrections=False), PARTY_NEW, "Paris")
    assert (plain.qid, plain.corrected) == ("Q90", False)


def test_a_linker_already_loaded_sees_what_another_taught(bundle_copy, state):
    reader = Linker.load(bundle_copy, state=state)
    assert _link(reader, PARTY_NEW, "Paris").qid == "Q90"
    Linker.load(bundle_copy, state=state).teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    assert _link(reader, PARTY_NEW, "Paris").qid == "Q47899"


def test_teaching_nil_and_an_entity_no_alias_names(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state)
    text = "Georgia signed the treaty in Tbilisi."
    assert _link(lk, text, "Georgia").qid is not None
    lk.teach(text, *_span(text, "Georgia"), None, lang="en")  # "not an entity of the KB"
    nil = _link(lk, "Georgia signed the deal in Tbilisi.", "Georgia")
    assert (nil.qid, nil.corrected) == (None, True)
    # Q64 (Berlin) is no candidate of "Jordan": teaching it adds the link
    text = "Jordan is where the wall fell."
    assert "Q64" not in [c.qid for c in _link(lk, text, "Jordan", candidates=True).candidates]
    lk.teach(text, *_span(text, "Jordan"), "Q64", lang="en")
    assert _link(lk, "Jordan is where the wall stood.", "Jordan").qid == "Q64"


def test_bad_corrections_are_refused_with_the_value(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state)
    with pytest.raises(InputError, match="Q999999999.*not an entity of this bundle"):
        lk.teach(PARTY, *_span(PARTY, "Paris"), "Q999999999", lang="en")
    with pytest.raises(InputError, match="out of range"):
        lk.teach(PARTY, 5, 500, "Q90", lang="en")
    with pytest.raises(InputError, match='has no "qid"'):
        lk.teach_batch([{"text": PARTY, "mentions": [{"start": 0, "end": 2}]}])
    with pytest.raises(InputError, match="switched off"):
        Linker.load(bundle_copy, state=state, use_corrections=False).teach(PARTY, 0, 2, None)
    assert len(lk.corrections) == 0


def test_corrections_belong_to_one_bundle(bundle_copy, tmp_path, state):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(bundle_copy, other)
    update_manifest(other, provenance={"note": "another build"})
    assert bundle_id(other) != bundle_id(bundle_copy)
    Linker.load(bundle_copy, state=state).teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    lk = Linker.load(other, state=state)
    assert len(lk.corrections) == 0 and _link(lk, PARTY_NEW, "Paris").qid == "Q90"
    assert len(Linker.load(bundle_copy, state=state).corrections) == 1


def test_a_bad_line_in_the_corrections_costs_only_itself(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state)
    lk.teach(CAPITAL, *_span(CAPITAL, "Washington"), "Q61", lang="en")
    lk.teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    path = lk.corrections.store.path
    first, second = path.read_text(encoding="utf-8").splitlines()
    path.write_text(first[:-40] + "\n" + second + "\n", encoding="utf-8")  # the first record torn
    with pytest.warns(RuntimeWarning, match="1 line.*not corrections and are skipped.*forget --bad"):
        fresh = Linker.load(bundle_copy, state=state)
    assert len(fresh.corrections) == 1
    assert _link(fresh, PARTY_NEW, "Paris").qid == "Q47899"  # the good correction is still used
    fresh.teach(PARTY_NEW, *_span(PARTY_NEW, "Paris"), "Q47899", lang="en")  # teaching goes on
    assert first[:-40] in path.read_text(encoding="utf-8")  # the bad line is kept until asked
    code, out, _ = _cli("corrections", "list", "--json", "--bundle", str(bundle_copy), "--state", str(state))
    assert code == 0 and len(out.splitlines()) == 2
    code, _, err = _cli("corrections", "forget", "--bad", "--bundle", str(bundle_copy), "--state", str(state))
    assert code == 0 and "Removed 1 unreadable line(s); 2 corrections remain" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Linker.load(bundle_copy, state=state).corrections) == 2


def test_teach_skips_bad_records_and_never_teaches_nil_by_omission(bundle_copy, tmp_path, state):
    b = ["--bundle", str(bundle_copy), "--state", str(state)]
    gold = tmp_path / "gold.jsonl"
    docs = [
        {"text": "Tokyo is big.", "lang": "en", "mentions": [{"start": 0, "end": 5, "qid": 1490}]},
        {"text": "Georgia voted.", "lang": "en", "mentions": [{"start": 0, "end": 7}]},
        {"text": PARTY, "lang": "en", "mentions": [{"start": 24, "end": 29, "qid": "Q47899"}]},
    ]
    gold.write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    code, _, err = _cli("teach", str(gold), *b)
    assert code == 1, err
    assert "gold.jsonl:1" in err and "not a string" in err  # named and skipped, the run goes on
    assert "gold.jsonl:2: mention 0:7 'Georgia' has no \"qid\"" in err
    assert "Taught 1 corrections" in err
    code, out, _ = _cli("corrections", "list", "--json", *b)
    assert [json.loads(line)["mention"] for line in out.splitlines()] == ["Paris"]  # no NIL for Georgia


def test_import_from_a_bundle_with_another_encoder_is_refused(bundle_copy, tmp_path, state):
    import shutil

    lk = Linker.load(bundle_copy, state=state)
    lk.teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    shared = tmp_path / "team.jsonl"
    assert _cli("corrections", "export", "-o", str(shared), "--bundle", str(bundle_copy), "--state", str(state))[0] == 0
    other = tmp_path / "other"
    shutil.copytree(bundle_copy, other)
    model = other / "encoder" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")  # another encoder (and so another bundle)
    update_manifest(other)
    code, _, err = _cli(
        "corrections", "import", str(shared), "--any-bundle", "--bundle", str(other), "--state", str(state)
    )
    assert code == 1 and "another encoder" in err
    # a file without the encoder's identity: vectors of the wrong length are skipped, named
    lines = shared.read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[0])
    head.pop("encoder")
    rec = json.loads(lines[1])
    rec["vector"] = rec["vector"][:8]  # 3 float16 values
    shared.write_text(json.dumps(head) + "\n" + json.dumps(rec) + "\n", encoding="utf-8")
    code, _, err = _cli(
        "corrections", "import", str(shared), "--any-bundle", "--bundle", str(other), "--state", str(state)
    )
    assert code == 1 and "3-d vector" in err and "Imported 0 new" in err


def _teach_many(args):
    bundle, state, n, word = args
    lk = Linker.load(bundle, state=state)
    for i in range(n):
        text = f"Story {i} by {word}: Paris arrived late."
        lk.teach(text, *_span(text, "Paris"), "Q47899", lang="en")
    return len(lk.corrections)


def test_concurrent_writers_lose_nothing(bundle_copy, state):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_teach_many, [(str(bundle_copy), str(state), 6, "Ana"), (str(bundle_copy), str(state), 6, "Bo")])
    lk = Linker.load(bundle_copy, state=state)
    assert len(lk.corrections) == 12
    assert sorted(e.context.split(":")[0] for e in lk.corrections.examples) == sorted(
        [f"Story {i} by Ana" for i in range(6)] + [f"Story {i} by Bo" for i in range(6)]
    )


def _cli(*argv, input=None):
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, *_):
        code = main(list(argv))
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_cli_teach_list_export_import_forget(bundle_copy, tmp_path, state):
    b = ["--bundle", str(bundle_copy), "--state", str(state)]
    gold = tmp_path / "gold.jsonl"
    docs = [
        {"text": PARTY, "lang": "en", "mentions": [{"start": 24, "end": 29, "qid": "Q47899"}]},
        {"text": "Georgia voted.", "lang": "en", "mentions": [{"start": 0, "end": 7, "qid": None}]},
        {"text": "Tokyo is big.", "lang": "en", "mentions": [{"start": 0, "end": 5, "qid": "Q424242"}]},
        {"text": "Mercury rose.", "lang": "en", "mentions": [{"start": 0, "end": 7, "title": "Unmapped"}]},
    ]
    gold.write_text("\n".join(json.dumps(d) for d in docs) + "\nnot json\n", encoding="utf-8")
    code, _, err = _cli("teach", str(gold), *b)
    assert code == 1, err  # one line could not be read: named, the rest taught
    assert "gold.jsonl:5" in err and "Taught 2 corrections" in err
    assert "1 mentions of entities this bundle's KB lacks" in err and "1 mentions whose title" in err
    code, out, _ = _cli("link", PARTY_NEW, "--lang", "en", "-f", "jsonl", *b)
    paris = [m for m in json.loads(out)["mentions"] if m["text"] == "Paris"]
    assert code == 0 and paris and paris[0]["qid"] == "Q47899" and paris[0]["corrected"] is True
    code, out, _ = _cli("link", PARTY_NEW, "--lang", "en", "-f", "jsonl", "--no-corrections", *b)
    assert [m["qid"] for m in json.loads(out)["mentions"] if m["text"] == "Paris"] == ["Q90"]
    code, out, _ = _cli("corrections", "list", "--json", *b)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["mention"], r["qid"], r["label"]) for r in rows] == [
        ("Paris", "Q47899", "Paris Hilton"),
        ("Georgia", None, "NIL (not an entity of the KB)"),
    ]
    assert "corrections  2 taught examples" in _cli("info", *b)[1].replace("corrections ", "corrections  ")
    shared = tmp_path / "team.jsonl"
    assert _cli("corrections", "export", "-o", str(shared), *b)[0] == 0
    other_state = ["--bundle", str(bundle_copy), "--state", str(tmp_path / "mate")]
    code, _, err = _cli("corrections", "import", str(shared), *other_state)
    assert code == 0 and "Imported 2 new" in err
    assert "Imported 0 new corrections (2 already here)" in _cli("corrections", "import", str(shared), *other_state)[2]
    code, _, err = _cli("corrections", "forget", rows[1]["id"], *b)
    assert code == 0 and "Removed 1 corrections; 1 remain" in err
    code, _, err = _cli("corrections", "forget", "--key", "PARIS", *b)
    assert code == 0 and "Removed 1 corrections; 0 remain" in err
    code, _, err = _cli("corrections", "forget", "abcdefabcdef", *b)
    assert code == 1 and "No correction with id abcdefabcdef" in err


def test_import_refuses_a_file_from_another_bundle(bundle_copy, tmp_path, state):
    shared = tmp_path / "team.jsonl"
    shared.write_text(json.dumps({"xned-corrections": 1, "bundle": "0" * 64, "examples": 0}) + "\n", encoding="utf-8")
    code, _, err = _cli("corrections", "import", str(shared), "--bundle", str(bundle_copy), "--state", str(state))
    assert code == 1 and "exported from another bundle" in err and "--any-bundle" in err


def test_a_taught_name_no_alias_spells_is_detected_in_later_text(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state)
    text = "Les habitants de the Hexagon votent dimanche."
    assert "the hexagon" not in [lk_.text.lower() for lk_ in lk.link(text, lang="en")]
    lk.teach(text, *_span(text, "the Hexagon"), "Q142", lang="en")  # France, by a nickname
    later = "Tourists love the Hexagon in summer."
    found = [(x.text, x.qid, x.corrected) for x in lk.link(later, lang="en") if x.text == "the Hexagon"]
    assert found == [("the Hexagon", "Q142", True)]
    # a NIL correction is not a reason to detect a string
    lk.teach("Il pleut sur Gotham ce soir.", 13, 19, None, lang="fr")
    assert "Gotham" not in [x.text for x in lk.link("Gotham again.", lang="fr")]


def _vec(lk, text, word):
    return lk.encoder.embed_mentions([text], [[_span(text, word)]])[0][0]


def test_a_correction_carries_to_contexts_within_its_reach_only(bundle_copy, state):
    lk = Linker.load(bundle_copy, state=state, use_corrections=False)
    taught = _vec(lk, PARTY, "Paris")
    near, far = float(taught @ _vec(lk, PARTY_NEW, "Paris")), float(taught @ _vec(lk, CAPITAL, "Paris"))
    assert near > far + 0.1  # the fixture encoder tells the gossip page from the travel log
    scoring = bundle_copy / "scoring.json"
    data = json.loads(scoring.read_text()) if scoring.exists() else {"weights": {}, "bias": 0.5, "threshold": 0.3}
    from xned.engine.corrections import FEW_SHIFT

    # a reach whose window for one example (raised by FEW_SHIFT of the way to 1) ends below `near`
    hi = (near - 0.01 - FEW_SHIFT) / (1 - FEW_SHIFT)
    lo = far + 0.02 - (1 - hi) * FEW_SHIFT  # ... and starts above `far`
    assert lo < hi
    data["corrections_reach"] = [lo, hi]
    scoring.write_text(json.dumps(data))
    update_manifest(bundle_copy)
    lk = Linker.load(bundle_copy, state=state)
    assert lk.scorer.reach == (lo, hi)
    lk.teach(PARTY, *_span(PARTY, "Paris"), "Q47899", lang="en")
    assert (_link(lk, PARTY_NEW, "Paris").qid, _link(lk, PARTY_NEW, "Paris").corrected) == ("Q47899", True)
    out = _link(lk, CAPITAL, "Paris")  # out of reach: the bundle's own decision, unmarked
    assert (out.qid, out.corrected) == ("Q90", False)


def test_one_example_reaches_less_far_than_many():
    """A key with one taught example applies only to contexts closer to it than the measured
    reach asks of a well-taught key: one example is weaker evidence than the expert and prior."""
    import numpy as np

    from xned.engine.corrections import Residual

    def residual(n):
        taught = np.zeros((n, 2), np.float32)
        taught[:, 0] = 1.0
        return Residual({}, np.zeros((0, 2), np.float32), np.zeros(0, np.float32), n, 0.0, taught)

    reach = (0.85, 0.89)
    x = np.array([0.885, np.sqrt(1 - 0.885**2)], np.float32)  # cosine 0.885 to the taught examples
    one, many = residual(1).share(x, reach), residual(50).share(x, reach)
    assert many > 0.8 and one < 0.25  # one example's window starts higher than the measured reach
    far = np.array([0.86, np.sqrt(1 - 0.86**2)], np.float32)
    assert residual(1).share(far, reach) == 0.0 and residual(50).share(far, reach) > 0.0


def test_reach_is_measured_on_wikipedia_and_kept_by_a_recalibration(bundle_copy, tmp_path):
    import bz2

    from xned.engine.scoring import Scorer
    from xned.export.experts.calibrate import write_scoring
    from xned.export.experts.reach import measure_reach

    topics = ["the river", "the election", "the bakery", "a concert", "the harbour"] * 5
    pages = "".join(
        f"<page><title>P{i}</title><ns>0</ns><revision><text>On day {i} [[Paris]] and [[Jordan]] were "
        f"in the news about {t}; [[Amazon]] too.</text></revision></page>"
        for i, t in enumerate(topics)
    )
    dump = tmp_path / "enwiki-sample.xml.bz2"
    dump.write_bytes(
        bz2.compress(f"<mediawiki><siteinfo><dbname>enwiki</dbname></siteinfo>{pages}</mediawiki>".encode())
    )
    code, out, err = _cli("experts", "reach", str(dump), "--bundle", str(bundle_copy))
    assert code == 0, err
    result = json.loads(out)
    assert result["pairs"] == 3 * 25 * 24 // 2  # three names, each in 25 articles
    lo, hi = result["corrections_reach"]
    assert -1.0 <= lo < hi <= 1.0
    assert Scorer.load(bundle_copy / "scoring.json").reach == (lo, hi)
    Linker.load(bundle_copy)  # the manifest was updated with the file
    write_scoring(bundle_copy / "scoring.json", {"weights": {}, "bias": 0.1, "threshold": 0.3})
    assert Scorer.load(bundle_copy / "scoring.json").reach == (lo, hi)
    with pytest.raises(InputError, match="larger Wikipedia sample"):
        measure_reach(bundle_copy, [_one_page(tmp_path)])


def _one_page(tmp_path):
    import bz2

    path = tmp_path / "one.xml.bz2"
    page = "<page><title>A</title><ns>0</ns><revision><text>[[Paris]] and [[Paris]].</text></revision></page>"
    path.write_bytes(bz2.compress(f"<mediawiki>{page}</mediawiki>".encode()))
    return path
