import json
import shutil
from pathlib import Path

import pytest

import xned
from xned.engine.linker import Linker
from xned.errors import KBBuildError
from xned.export.bundle_ops import BundleBuild, build_kb_into_bundle
from xned.export.kb.incremental import add, compact
from xned.export.manifest import update_manifest

BASE = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q90\tcity\tParis\tcapital of France\tpop:2000000\tes:París|ja:パリ|en~:City of Light
Q830149\tcity\tParis, Texas\tcity in Texas\tpop:25000\ten~:Paris
Q64\tcity\tBerlin\tcapital of Germany\tpop:3700000\tde:Berlin|es:Berlín
"""
ADDED = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q999000001\tcompany\tParis Robotics\trobotics start-up in Lyon\tpop:10\ten~:Paris|es:Robótica París
Q64\tcity\tBerlin\tcapital and largest city of Germany\tpop:3700000\tde:Berlin|eu:Berlin
"""
COUNTS = "en\tParis\tQ90\t40\nen\tParis\tQ999000001\t2\n"


@pytest.fixture()
def sources(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "base.tsv").write_text(BASE, encoding="utf-8")
    (d / "added.tsv").write_text(ADDED, encoding="utf-8")
    (d / "more.counts.tsv").write_text(COUNTS, encoding="utf-8")
    return d


def _bundle(tmp_path, bundle_path, name):
    b = tmp_path / name
    b.mkdir()
    shutil.copytree(bundle_path / "encoder", b / "encoder")
    return b


def _kb_files(bundle):
    root = bundle / "kb"
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("meta.json", "build.json")
    }


def test_add_is_visible_then_compact_equals_full_rebuild(tmp_path, bundle_path, sources):
    inc = _bundle(tmp_path, bundle_path, "inc")
    build_kb_into_bundle([sources / "base.tsv"], inc)
    add(inc, [sources / "added.tsv"])
    add(inc, [sources / "more.counts.tsv"])
    linker = Linker.load(inc, verify=True)
    qids = [q for q, _, _ in linker.lookup("Paris", "en", 10)]
    assert "Q999000001" in qids and "Q90" in qids
    assert [q for q, _, _ in linker.lookup("Robótica París", "es", 5)] == ["Q999000001"]
    assert linker.kb.record(linker.kb.index("Q64"))[1] == "capital and largest city of Germany"  # overlay wins
    assert linker.lookup("Berlin", "eu", 5)[0][0] == "Q64"

    compact(inc)
    assert not (inc / "kb" / "overlay").exists()
    full = _bundle(tmp_path, bundle_path, "full")
    build_kb_into_bundle([sources / "base.tsv", sources / "added.tsv", sources / "more.counts.tsv"], full)
    assert _kb_files(inc) == _kb_files(full)
    meta_inc = json.loads((inc / "kb" / "meta.json").read_text())
    meta_full = json.loads((full / "kb" / "meta.json").read_text())
    assert meta_inc["languages"] == meta_full["languages"] and meta_inc["entities"] == meta_full["entities"]
    Linker.load(inc, verify=True)  # manifest re-hashed after compaction


def test_add_rejects_bad_file_and_leaves_bundle_unchanged(tmp_path, bundle_path, sources):
    b = _bundle(tmp_path, bundle_path, "b")
    build_kb_into_bundle([sources / "base.tsv"], b)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "Q5", "label": "ok"}\n{not json\n', encoding="utf-8")
    before = _kb_files(b)
    with pytest.raises(KBBuildError, match="bad.jsonl:2"):
        add(b, [bad])
    assert _kb_files(b) == before and not (b / "kb_sources").exists()


def test_compact_detects_changed_source(tmp_path, bundle_path, sources):
    b = _bundle(tmp_path, bundle_path, "b")
    build_kb_into_bundle([sources / "base.tsv"], b)
    add(b, [sources / "added.tsv"])
    (sources / "base.tsv").write_text(BASE + "Q5\thuman\tHuman\t\t\t\n", encoding="utf-8")
    with pytest.raises(KBBuildError, match="changed since the KB was built"):
        compact(b)
    assert (b / "kb" / "overlay").exists()  # nothing lost
    compact(b, moved={"base.tsv": sources / "base.tsv"})
    assert Linker.load(b).kb.index("Q5") >= 0


def test_vector_cache_embeds_each_text_once(tmp_path, bundle_path, sources, monkeypatch):
    from xned.engine.encoder import Encoder

    calls = []
    real = Encoder.embed_texts

    def counting(self, texts, kind="passage"):
        calls.append((kind, len(texts)))
        return real(self, texts, kind)

    def embedded(kind):
        return sum(n for k, n in calls if k == kind)

    monkeypatch.setattr(Encoder, "embed_texts", counting)
    cache = tmp_path / "cache"
    a = _bundle(tmp_path, bundle_path, "a")
    build_kb_into_bundle([sources / "base.tsv"], a, BundleBuild(vector_cache=cache, names=True))
    # entity passages, and the labels of the name index ("query"), each through the cache
    assert embedded("passage") == 3 and embedded("query") == 3 and list(cache.rglob("vectors.sqlite"))
    b = _bundle(tmp_path, bundle_path, "b")
    build_kb_into_bundle([sources / "base.tsv", sources / "added.tsv"], b, BundleBuild(vector_cache=cache, names=True))
    assert embedded("passage") == 3 + 1  # only the new entity (Berlin keeps its first description)
    assert embedded("query") == 3 + 1  # and its label
    c = _bundle(tmp_path, bundle_path, "c")
    build_kb_into_bundle([sources / "base.tsv"], c, BundleBuild(vector_cache=cache, names=True))
    assert embedded("passage") == 4 and embedded("query") == 4
    assert (a / "kb" / "names.usearch").read_bytes() == (c / "kb" / "names.usearch").read_bytes()
    assert (a / "kb" / "entities" / "vectors.npy").read_bytes() == (c / "kb" / "entities" / "vectors.npy").read_bytes()


def test_vectors_only_for_entities_that_share_a_name(tmp_path, bundle_path, sources, monkeypatch):
    from xned.engine.encoder import Encoder

    embedded = []
    real = Encoder.embed_texts

    def counting(self, texts, kind="passage"):
        if kind == "passage":  # entity passages (labels and mention strings are queries)
            embedded.extend(texts)
        return real(self, texts, kind)

    monkeypatch.setattr(Encoder, "embed_texts", counting)
    some = _bundle(tmp_path, bundle_path, "some")
    meta, _ = build_kb_into_bundle([sources / "base.tsv"], some, BundleBuild(vectors="ambiguous"))
    # "Paris" names Q90 and Q830149; Berlin shares no name: not embedded
    assert sorted(embedded) == ["Paris, Texas: city in Texas", "Paris: capital of France"]
    assert meta["vectors"] == {"rule": "ambiguous", "entities": 2}
    full = _bundle(tmp_path, bundle_path, "full")
    build_kb_into_bundle([sources / "base.tsv"], full)
    for b in (some, full):  # a calibrated fusion (the default bundle's): similarity decides NIL
        shutil.copy(Path(xned.__file__).parent / "assets" / "default" / "scoring.json", b / "scoring.json")
        update_manifest(b)  # only what the manifest lists is loaded
    lk_some, lk_full = Linker.load(some, use_corrections=False), Linker.load(full, use_corrections=False)
    for q in ("Q90", "Q830149"):  # the same vector as a full build
        i = lk_some.kb.index(q)
        assert lk_some.kb.vectors([i]).tolist() == lk_full.kb.vectors([lk_full.kb.index(q)]).tolist()
    assert not lk_some.kb.vectors([lk_some.kb.index("Q64")]).any()
    import numpy as np

    assert np.load(some / "kb" / "entities" / "vectors.npy").shape[0] == 2  # stored for those two only
    prov = lk_some.manifest.data["provenance"]
    assert prov["kb"]["vectors"] == "ambiguous" and prov["dense_index"]["entities"] == 2  # only vectors are indexed
    text = "Paris and Berlin signed the treaty."
    embedded.clear()
    a = lk_some.link(text, lang="en", candidates=True)
    b = lk_full.link(text, lang="en", candidates=True)
    assert [x.qid for x in a if x.text == "Paris"] == [x.qid for x in b if x.text == "Paris"]
    # an entity stored without a vector is embedded at run time when its similarity counts
    # (once, then cached), with the passage the build embeds: a full build's cosine
    assert embedded == ["Berlin: capital of Germany"] and lk_some.entity_vectors.computed == 1
    lone = lk_some.link(text, lang="en", mentions=[(10, 16)], candidates=True)[0]
    full = lk_full.link(text, lang="en", mentions=[(10, 16)], candidates=True)[0]
    assert lone.qid == full.qid and lone.candidates[0].qid == "Q64"
    assert [c.qid for c in lone.candidates] == [c.qid for c in full.candidates]
    for c, d in zip(lone.candidates, full.candidates, strict=True):
        assert c.similarity == pytest.approx(d.similarity, abs=0.01)
    assert lone.candidates[0].similarity != pytest.approx(lk_some.scorer.sim_typical, abs=0.01)
    assert lone.score == pytest.approx(full.score, abs=0.01)
    assert lk_some.entity_vectors.computed == 1
    # without an encoder to embed it: the typical cosine
    lk_some.entity_vectors.encoder = None
    typical = lk_some.link(text, lang="en", mentions=[(10, 16)], candidates=True)[0]
    assert typical.candidates[0].similarity == pytest.approx(lk_some.scorer.sim_typical, abs=1e-6)
    # the rule is recorded and a compaction repeats it
    embedded.clear()
    compact(some)
    assert sorted(embedded) == ["Paris, Texas: city in Texas", "Paris: capital of France"]
    with pytest.raises(Exception, match="Unknown vectors rule"):
        build_kb_into_bundle([sources / "base.tsv"], some, BundleBuild(vectors="most"))


_KILLED_COMPACT = """
import os, sys
from pathlib import Path
import xned.export.kb.incremental as incremental
def die(*a, **k):  # killed after the new KB is written, before its dense index is
    os._exit(9)
incremental.build_dense_index = die
incremental.compact(Path(sys.argv[1]))
"""


def test_killed_compact_leaves_a_loadable_bundle_and_a_rerun_keeps_the_dense_index(tmp_path, bundle_path, sources):
    import subprocess
    import sys

    from xned.engine import layout as L

    b = _bundle(tmp_path, bundle_path, "b")
    build_kb_into_bundle([sources / "base.tsv"], b)
    add(b, [sources / "added.tsv"])
    assert (b / L.KB / L.KBDir.DENSE_INDEX).is_file()
    before = _kb_files(b)
    p = subprocess.run([sys.executable, "-c", _KILLED_COMPACT, str(b)], capture_output=True, timeout=300)
    assert p.returncode == 9, p.stderr
    assert _kb_files(b) == before  # the kill changed nothing
    Linker.load(b, verify=True)
    compact(b)  # the rerun starts from the intact bundle
    assert (b / L.KB / L.KBDir.DENSE_INDEX).is_file() and not (b / "kb" / "overlay").exists()
    assert [p.name for p in tmp_path.glob(".b.*")] == [".b.lock"]  # no staging or scratch left beside it
    Linker.load(b, verify=True)


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from xned.export.transaction import bundle_lock
with bundle_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_add_and_compact_are_refused_while_another_writer_holds_the_bundle(tmp_path, bundle_path, sources):
    import subprocess
    import sys

    b = _bundle(tmp_path, bundle_path, "b")
    build_kb_into_bundle([sources / "base.tsv"], b)
    before = _kb_files(b)
    p = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(b)], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"held"
        with pytest.raises(KBBuildError, match=f"being written by PID {p.pid}"):
            add(b, [sources / "added.tsv"])
        with pytest.raises(KBBuildError, match=f"being written by PID {p.pid}"):
            compact(b)
    finally:
        p.kill()
        p.wait()
    assert _kb_files(b) == before and not (b / "kb_sources").exists()
    add(b, [sources / "added.tsv"])  # the holder is gone: the lock is free again
    assert (b / "kb_sources").is_dir()


def test_a_killed_builds_scratch_files_are_removed_by_the_next_build(tmp_path, sources):
    from xned.export.kb.build import build_kb

    stale = tmp_path / ".kb.scratch" / "xned-entities-dead"
    stale.mkdir(parents=True)
    (stale / "run0").write_bytes(b"x" * 1000)
    build_kb([sources / "base.tsv"], tmp_path / "kb")
    assert not (tmp_path / ".kb.scratch").exists()
    assert (tmp_path / "kb" / "meta.json").is_file()
