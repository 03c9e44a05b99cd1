import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xned.engine.kb import KB
from xned.engine.normalize import normalize
from xned.errors import KBBuildError
from xned.export.bundle_ops import BundleBuild
from xned.export.kb.build import build_kb
from xned.export.kb.builder import KBBuilder, lang_key
from xned.export.kb.options import KBOptions

TSV = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q90\tcity\tParis\tcapital of France\tpop:2000000\tes:París|ja:パリ|en~:City of Light
Q830149\tcity\tParis, Texas\tcity in Texas\tpop:25000\ten~:Paris
Q64\tcity\tBerlin\tcapital of Germany\tpop:3700000\tde:Berlin|1x:Berlin|es:Berlín
Q1\tbad\t\t\t\t
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_build_and_lookup(tmp_path):
    src = write(tmp_path, "e.tsv", TSV)
    counts = write(tmp_path, "a.counts.tsv", "en\tParis\tQ830149\t5\nen\tParis\tQ90\t95\n")
    meta, report = build_kb([src, counts], tmp_path / "kb")
    kb = KB(tmp_path / "kb")
    ents, pri = kb.lookup("en", "paris")
    assert [kb.qid(e) for e in ents] == ["Q90", "Q830149"]
    assert pri[0] > pri[1] and pri.sum() <= 1.0 + 1e-6
    es_ents, es_pri = kb.lookup("es", "paris")  # folded "parís", then English "paris" at a discount
    assert [kb.qid(e) for e in es_ents] == ["Q90", "Q830149"] and es_pri[0] > 2 * es_pri[1]
    assert kb.record(kb.index("Q64")) == ("Berlin", "capital of Germany")
    assert meta["entities"] == 4
    assert report.counts["bad_lang"] == 1


def test_build_is_deterministic(tmp_path):
    src = write(tmp_path, "e.tsv", TSV)
    digests = []
    for out in ("kb1", "kb2"):
        build_kb([src], tmp_path / out)
        h = hashlib.sha256()
        for p in sorted((tmp_path / out).rglob("*")):
            if p.is_file():
                h.update(p.relative_to(tmp_path / out).as_posix().encode() + p.read_bytes())
        digests.append(h.hexdigest())
    assert digests[0] == digests[1]


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_external_merge_gives_the_same_kb(tmp_path):
    """Spilling sorted runs of 3 records (dozens of runs, merged on disk) must write the
    same bytes as one in-memory run, with accents, duplicates, counts and conflicts."""
    extra = (
        "Q90\tcity\tParis (France)\tother description\tpop:5\tfr:Paris|de:Paris\nQ3127\tcity\tZürich\t\t\tde:Zürich\n"
    )
    entities = write(tmp_path, "e.tsv", TSV + extra)
    counts = write(tmp_path, "a.counts.tsv", "en\tParis\tQ830149\t5\nen\tParis\tQ90\t95\nde\tZürich\tQ3127\t2\n")
    meta1, rep1 = build_kb([entities, counts], tmp_path / "one" / "kb")
    meta2, rep2 = build_kb([entities, counts], tmp_path / "many" / "kb", KBOptions(run_records=3))
    assert _tree_digest(tmp_path / "one" / "kb") == _tree_digest(tmp_path / "many" / "kb")
    assert rep1.counts["conflict"] == rep2.counts["conflict"] == 2
    kb = KB(tmp_path / "many" / "kb")
    assert kb.record(kb.index("Q90")) == ("Paris", "capital of France")
    assert [kb.qid(e) for e in kb.lookup("de", "zurich")[0]] == ["Q3127"]


def test_strict_names_line_and_value(tmp_path):
    src = write(tmp_path, "e.tsv", "Q90\tcity\tParis\n")
    with pytest.raises(KBBuildError, match=r"e.tsv:1: expected at least 6 tab-separated columns"):
        build_kb([src], tmp_path / "kb", KBOptions(strict=True))
    bad = write(tmp_path, "b.tsv", "Qx1\tcity\tParis\t\t\ten:Paris\n")
    with pytest.raises(KBBuildError, match=r"b.tsv:1: invalid QID 'Qx1'"):
        build_kb([bad], tmp_path / "kb", KBOptions(strict=True))


def test_negative_count_rejected(tmp_path):
    src = write(tmp_path, "e.tsv", TSV)
    counts = write(tmp_path, "a.counts.tsv", "en\tParis\tQ90\t-3\n")
    with pytest.raises(KBBuildError, match=r"a.counts.tsv:1: count -3.0"):
        build_kb([src, counts], tmp_path / "kb", KBOptions(strict=True))


def test_failed_build_leaves_previous_kb(tmp_path):
    src = write(tmp_path, "e.tsv", TSV)
    build_kb([src], tmp_path / "kb")
    before = (tmp_path / "kb" / "meta.json").read_bytes()
    bad = write(tmp_path, "x.jsonl", "not json\n")
    with pytest.raises(KBBuildError):
        build_kb([bad], tmp_path / "kb", KBOptions(strict=True))
    assert (tmp_path / "kb" / "meta.json").read_bytes() == before
    assert not (tmp_path / "kb.incomplete").exists()


def test_lang_codes():
    assert lang_key("pt-BR") == "pt"
    assert lang_key("und") == "mul"
    assert lang_key("zh-Hant") == "zh"
    assert lang_key("not a code") is None


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="|\t:\x1f"),
    min_size=1,
    max_size=12,
).filter(lambda s: normalize(s) != "")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["en", "es", "ja"]), names, st.integers(1, 40)),
        min_size=1,
        max_size=25,
    )
)
def test_every_alias_round_trips(tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("rt")
    b = KBBuilder()
    for lang, name, q in rows:
        b.add_entity(f"Q{q}", label=f"E{q}")
        b.add_name(lang, name, f"Q{q}")
    b.write(tmp / "kb", {})
    kb = KB(tmp / "kb")
    for lang, name, q in rows:
        ents, _ = kb.lookup(lang, normalize(name), top_k=1000, fuzzy=False)
        assert f"Q{q}" in {kb.qid(e) for e in ents}, (lang, name, q)


def test_fixture_script_regenerates_identical_bundle(tmp_path, bundle_path):
    pytest.importorskip("onnx")
    out = tmp_path / "b"
    subprocess.run(
        [sys.executable, "scripts/make_fixture.py", str(out)],
        check=True,
        cwd=bundle_path.parents[2],
        capture_output=True,
    )
    new = (out / "manifest.json").read_text()
    old = (bundle_path / "manifest.json").read_text()
    assert new == old


LOOKUP_TSV = """Q90\tcity\tParis\tcapital of France\tpop:2000000\tja:パリ
Q2835080\tcity\tParys\ttown in South Africa\tpop:40000\tfr:Paris
Q40\tcountry\tAustria\tcountry in Central Europe\tpop:9000000\tde:Österreich
Q1490\tcity\tTokyo\tcapital of Japan\tpop:14000000\tja:東京
Q1138285\torganization\tUnited Auto Workers\tlabor union\tpop:1\t
Q22686\thuman\tDonald Trump\tpresident of the United States\tpop:1\tja:ドナルド・トランプ
Q60\tcity\tNew York City\tcity in the United States\tpop:8000000\ten~:New York
Q985\tstate\tBaden-Württemberg\tstate of Germany\tpop:11000000\t
Q131128\tcity\tBraunau am Inn\ttown in Austria\tpop:17000\ten~:Braunau
Q39865\tcity\tSpa\ttown in Belgium\tpop:10000\t
Q167037\tconcept\tcorporation\tlegal entity\tpop:1\ten~:Corp.
"""


def test_lookup_fallbacks(tmp_path):
    build_kb([write(tmp_path, "e.tsv", LOOKUP_TSV)], tmp_path / "kb")
    kb = KB(tmp_path / "kb")

    def qids(lang, text):
        return [kb.qid(e) for e in kb.lookup(lang, normalize(text))[0]]

    # own-language exact match first, other languages' exact matches after it
    assert qids("fr", "Paris") == ["Q2835080", "Q90"]
    assert qids("de", "Oesterreich") == ["Q40"]  # umlaut digraphs (German only)
    assert qids("fr", "Oesterreich") == []
    assert qids("de", "Öster¬\nreich") == ["Q40"]  # OCR line-break hyphenation
    # a plain hyphen at a line end: joined, kept or spaced, whichever is an alias
    assert qids("en", "Brau-\nnau") == ["Q131128"]
    assert qids("de", "Baden-\nWürttemberg") == ["Q985"]
    assert qids("en", "New-\nYork") == ["Q60"]
    assert qids("en", "the United Auto Workers union") == ["Q1138285"]  # longest contained alias
    assert qids("ja", "東京の知事") == ["Q1490"]  # contained, per character in CJK
    assert qids("en", "Parisian") == []  # contained aliases end on a token boundary
    assert qids("it", "Montedison SpA") == []  # a legal form names no one
    assert qids("en", "Hearst Corp.") == []  # also written with its dot
    assert qids("en", "Spa") == ["Q39865"]  # alone it is the town
    ents, pri = kb.lookup("ja", "トランプ")  # one part of a middle-dot name, as a weak alias
    assert [kb.qid(e) for e in ents] == ["Q22686"]
    assert qids("ja", "ドナルドトランプ") == ["Q22686"]
    assert qids("ja", "トランプ大統領") == ["Q22686"]  # a katakana word ends where the kanji start
    assert qids("ja", "トランプタワー") == []  # no name inside one katakana word (Trump Tower)
    assert qids("ja", "ストランプ") == []
    # found only by a name inside it (the ``partial`` scoring feature), or named whole
    assert kb.contained_only("en", normalize("the United Auto Workers union"))
    assert kb.contained_only("ja", normalize("東京の知事"))
    assert not kb.contained_only("en", normalize("United Auto Workers"))
    assert not kb.contained_only("en", normalize("Parisian"))  # no candidate at all
    assert not kb.contained_only("en", normalize("Rome and Milan"))


def test_key_index_gives_the_same_candidates_as_asking_every_table(tmp_path):
    import shutil

    build_kb([write(tmp_path, "e.tsv", LOOKUP_TSV + TSV.replace("Q1\tbad\t\t\t\t\n", ""))], tmp_path / "kb")
    probes = [
        ("fr", "paris"),
        ("es", "paris"),
        ("ja", "paris"),
        ("de", "oesterreich"),
        ("en", "the united auto workers union"),
        ("ja", "東京の知事"),
        ("es", "berlin"),
        ("fr", "berlín"),
        ("ja", "トランプ"),
        ("en", "nothing here"),
        (None, "paris"),  # no language: every table that holds the key
        (None, "東京の知事"),
        (None, "oesterreich"),
        (None, "nothing here"),
    ]
    with_index = [KB(tmp_path / "kb").lookup(lang, key) for lang, key in probes]
    assert KB(tmp_path / "kb").base.index is not None
    shutil.rmtree(tmp_path / "kb" / "key_index")
    kb = KB(tmp_path / "kb")
    assert kb.base.index is None
    for (ents, pri), (lang, key) in zip(with_index, probes, strict=True):
        ents2, pri2 = kb.lookup(lang, key)
        assert ents.tolist() == ents2.tolist() and pri.tolist() == pri2.tolist(), (lang, key)


def test_spill_cascades_many_runs(monkeypatch):
    import random

    from xned.export import spill

    monkeypatch.setattr(spill, "MAX_FANIN", 3)
    sp = spill.Spill("t", run_records=2)
    lines = [f"k{random.Random(i).randrange(1000):04d}\t{i}" for i in range(41)]
    for line in lines:
        sp.add(line)
    assert len(sp.runs) == 20
    assert list(sp.merged()) == sorted(lines)
    assert len(sp.runs) <= 3
    assert list(sp.merged()) == sorted(lines)  # merged again from the cascaded runs
    sp.close()


def test_failed_or_mostly_skipped_builds_leave_the_bundle_as_it_was(tmp_path, bundle_path):
    import shutil

    from xned.errors import KBBuildError
    from xned.export.bundle_ops import build_kb_into_bundle

    bundle = tmp_path / "b"
    shutil.copytree(bundle_path, bundle)
    before = {p.relative_to(bundle): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.tsv"
    good = "Q1\tthing\tOne\tfirst\t1\ten:One\n"
    bad.write_text(good + "".join(f"not a qid {i}\tx\n" for i in range(9)), encoding="utf-8")
    with pytest.raises(KBBuildError, match="max-skipped"):
        build_kb_into_bundle([bad], bundle, BundleBuild(vectors=False))
    truncated = tmp_path / "dump.json.bz2"
    truncated.write_bytes(b"BZh91AY&SY" + b"\x00" * 20)
    other = tmp_path / "other-encoder"  # another encoder: copied into the bundle only on success
    shutil.copytree(bundle / "encoder", other)
    (other / "config.json").write_text('{"max_length": 64}', encoding="utf-8")
    with pytest.raises(Exception):  # noqa: B017 - any failure must leave the bundle intact
        build_kb_into_bundle([truncated], bundle, BundleBuild(encoder=other, vectors=False))
    after = {p.relative_to(bundle): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.lock", "b", "bad.tsv", "dump.json.bz2", "other-encoder"]
    # a failed build into a new folder leaves nothing behind
    with pytest.raises(KBBuildError):
        build_kb_into_bundle([bad], tmp_path / "new", BundleBuild(encoder=bundle / "encoder", vectors=False))
    assert not (tmp_path / "new").exists() and not (tmp_path / ".new.staging").exists()


def test_a_second_writer_is_told_who_holds_the_bundle(tmp_path):
    from xned.errors import KBBuildError
    from xned.export.transaction import bundle_transaction

    with bundle_transaction(tmp_path / "b") as stage:
        (stage / "x").write_text("1", encoding="utf-8")
        second = bundle_transaction(tmp_path / "b")
        with pytest.raises(KBBuildError, match=f"being written by PID {os.getpid()}"):
            second.__enter__()
    assert (tmp_path / "b" / "x").read_text(encoding="utf-8") == "1"


def test_sections_of_sorted_runs_are_found_by_bisection(monkeypatch):
    import random

    from xned.export import spill

    monkeypatch.setattr(spill, "MAX_FANIN", 4)
    rng = random.Random(3)
    sp = spill.Spill("t", run_records=37)
    fields = ["de", "en", "en-x", "eo", "ja", "mul", "é"]  # "en" a prefix of "en-x", a non-ASCII one
    lines = [f"{rng.choice(fields)}\t{rng.choice(['a', 'ab', ' x', 'é'])}{i}\t{rng.random()}" for i in range(1500)]
    for line in lines:
        sp.add(line)
    runs = sp.sorted_runs()
    assert 1 < len(runs) <= 4  # cascaded down to the fan-in
    sizes = spill.sections(runs)
    assert list(sizes) == sorted({line.split("\t")[0] for line in lines})
    assert sum(sizes.values()) == sum(p.stat().st_size for p in runs)
    for field in sizes:
        want = sorted(line for line in lines if line.split("\t")[0] == field)
        assert list(spill.merged_section(runs, field)) == want
        assert sizes[field] == sum(len(line.encode()) + 1 for line in want)
    assert list(spill.merged_section(runs, "fr")) == []
    sp.close()


def test_alias_tables_and_key_index_by_worker_processes_are_the_same(tmp_path, monkeypatch):
    from xned.export.kb import tables

    entities = write(tmp_path, "e.tsv", TSV)
    counts = write(tmp_path, "a.counts.tsv", "en\tParis\tQ830149\t5\nen\tParis\tQ90\t95\n")
    build_kb([entities, counts], tmp_path / "one" / "kb")
    pools = []
    real = tables.ProcessPoolExecutor

    def pool(**kw):
        pools.append(kw["max_workers"])
        return real(**kw)

    monkeypatch.setattr(tables, "PARALLEL_TABLE_BYTES", 0)
    monkeypatch.setattr(tables, "PARALLEL_INDEX_KEYS", 0)
    monkeypatch.setattr(tables, "ProcessPoolExecutor", pool)
    build_kb([entities, counts], tmp_path / "two" / "kb", KBOptions(reader_args={"workers": 2}))
    assert pools == [2, 2]  # two processes wrote the tables, two found the key index ids
    assert _tree_digest(tmp_path / "one" / "kb") == _tree_digest(tmp_path / "two" / "kb")
    groups = tables._balance({"en": 50, "de": 30, "fr": 25, "ja": 10}, 2)
    assert sorted(map(sorted, groups)) == [["de", "fr"], ["en", "ja"]]  # 55 and 60 bytes of work


@pytest.mark.parametrize(("bad", "good", "refused", "share"), [(980, 20, True, "98%"), (91, 909, False, None)])
def test_the_skipped_share_is_of_every_record_read(tmp_path, bundle_path, bad, good, refused, share):
    from xned.errors import KBBuildError
    from xned.export.bundle_ops import build_kb_into_bundle

    src = tmp_path / "mixed.tsv"
    rows = [f"Q{i + 1}\tthing\tThing {i}\tt\t1\ten:Thing {i}\n" for i in range(good)]
    rows += [f"not a qid {i}\tx\n" for i in range(bad)]
    src.write_text("".join(rows), encoding="utf-8")
    if refused:
        with pytest.raises(KBBuildError, match=f"skipped {bad:,} of {bad + good:,} input records \\({share}"):
            build_kb_into_bundle([src], tmp_path / "b", BundleBuild(vectors=False))
    else:  # 9.1% skipped passes a 10% threshold (it was counted as 10.0% of the good records)
        _, report = build_kb_into_bundle([src], tmp_path / "b", BundleBuild(vectors=False))
        assert report.skipped == bad
