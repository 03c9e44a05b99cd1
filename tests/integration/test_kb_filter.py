"""Entity filters on Wikidata dumps: classes with their subclass closure, sitelinks, a cap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.test_dumps import item
from tests.integration.test_kb_shards import _files
from xned.engine.kb import KB
from xned.errors import InputError
from xned.export.kb.build import build_kb
from xned.export.kb.filter import EntityFilter, subclass_closure
from xned.export.kb.options import KBOptions
from xned.export.kb.shards import ShardPlan, build_sharded, local_runner


def _with(obj, prop, *values):
    obj["claims"][prop] = [{"mainsnak": {"datavalue": {"value": {"id": v}}}} for v in values]
    return obj


def _sites(n):
    return tuple(f"x{i}wiki" for i in range(n))


@pytest.fixture()
def dump(tmp_path):
    items = [
        _with(item("Q101", "Company", p31="Q9", sites=()), "P279", "Q100"),  # subclass of organisation Q100
        _with(item("Q102", "Bank", p31="Q9", sites=()), "P279", "Q101", "Q7"),  # two parents
        item("Q1", "Acme Bank", p31="Q102", aliases=["Acme"], sites=_sites(3)),  # kept: Q102 < Q101 < Q100
        item("Q2", "Apple pie", p31="Q200", aliases=["Pie"], sites=_sites(9)),  # another tree: dropped
        item("Q3", "Tiny Org", p31="Q100", aliases=["Tiny"], sites=()),  # no sitelinks: dropped by min 1
        item("Q4", "Big Co", p31="Q101", sites=_sites(10)),
        _with(item("Q5", "Mid Co", p31="Q300", sites=_sites(5)), "P31", "Q300", "Q101"),  # second P31 counts
    ]
    path = tmp_path / "wd.json"
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n", encoding="utf-8")
    return path


def test_subclass_closure_follows_every_path():
    edges = ["0000000100\t0000000101", "0000000101\t0000000102", "0000000007\t0000000102", "0000000200\t0000000201"]
    assert subclass_closure(iter(sorted(edges)), [100]).tolist() == [100, 101, 102]
    assert subclass_closure(iter(sorted(edges)), [7, 200]).tolist() == [7, 102, 200, 201]


def test_classes_sitelinks_and_cap(dump, tmp_path):
    f = EntityFilter(classes=("Q100",), min_sitelinks=1)
    build_kb([dump], tmp_path / "kb", KBOptions(entity_filter=f))
    kb = KB(tmp_path / "kb")
    assert sorted(kb.qid(i) for i in range(len(kb))) == ["Q1", "Q4", "Q5"]
    assert not len(kb.lookup("en", "tiny")[0]) and not len(kb.lookup("en", "pie")[0])  # aliases go too
    assert kb.qid(int(kb.lookup("en", "acme")[0][0])) == "Q1"
    on_disk = json.loads((tmp_path / "kb" / "meta.json").read_text(encoding="utf-8"))
    assert on_disk["filter"]["kept_dump_items"] == 3  # and kb compact repeats the filter:
    build = json.loads((tmp_path / "kb" / "build.json").read_text(encoding="utf-8"))
    assert build["options"]["filter"]["classes"] == ["Q100"]
    build_kb([dump], tmp_path / "cap", KBOptions(entity_filter=EntityFilter(classes=("Q100",), max_entities=2)))
    cap = KB(tmp_path / "cap")
    assert sorted(cap.qid(i) for i in range(len(cap))) == ["Q4", "Q5"]  # the most sitelinks


def test_a_users_list_is_kept_and_anchors_do_not_bring_items_back(dump, tmp_path):
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("Q2\tQ200\tApple pie\tmy own entity\t\ten:Apple pie\n", encoding="utf-8")
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(
        "<mediawiki><siteinfo><dbname>enwiki</dbname></siteinfo><page><title>X</title><ns>0</ns>"
        "<revision><text>[[Tiny Org|the tiny one]] and [[Acme Bank|Acme]]</text></revision></page></mediawiki>",
        encoding="utf-8",
    )
    titles = tmp_path / "titles.tsv"
    titles.write_text("Tiny Org\tQ3\nAcme Bank\tQ1\n", encoding="utf-8")
    f = EntityFilter(classes=("Q100",), min_sitelinks=1)
    build_kb([dump, tsv, xml], tmp_path / "kb", KBOptions(entity_filter=f, reader_args={"titles_tsv": titles}))
    kb = KB(tmp_path / "kb")
    assert sorted(kb.qid(i) for i in range(len(kb))) == ["Q1", "Q2", "Q4", "Q5"]
    assert not len(kb.lookup("en", "the tiny one")[0])


def test_the_sharded_build_filters_alike(dump, tmp_path):
    f = EntityFilter(classes=("Q100",), min_sitelinks=1, max_entities=2)
    build_kb([dump], tmp_path / "single", KBOptions(entity_filter=f, run_records=3))
    build_sharded(
        [dump],
        tmp_path / "sharded",
        ShardPlan(local_runner(2), shard_bytes=300),
        KBOptions(entity_filter=f, run_records=3),
    )
    assert _files(tmp_path / "sharded") == _files(tmp_path / "single")


def test_profiles_and_bad_options():
    laptop = EntityFilter.make("laptop")
    assert "Q5" in laptop.classes and laptop.max_entities == 3_000_000 and laptop.active
    assert not EntityFilter.make("full").active
    assert EntityFilter.make("laptop", classes=["Q5"], max_entities=10).classes == ("Q5",)
    with pytest.raises(InputError, match="Unknown --profile 'phone'"):
        EntityFilter.make("phone")
    with pytest.raises(InputError, match="'human' is not a Wikidata class id"):
        EntityFilter.make(classes=["human"])
    assert np.array_equal(subclass_closure(iter([]), [5]), [5])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 5)), max_size=400, unique_by=lambda t: t[0]),
    st.one_of(st.none(), st.integers(0, 50)),
    st.integers(0, 3),
)
def test_the_cap_keeps_the_most_linked_whatever_the_cuts(items, cap, min_links):
    import xned.export.kb.filter as kf

    items = sorted(items)
    f = EntityFilter((), min_links, cap)
    want = [(q, n) for q, n in items if n >= min_links]
    if cap is not None:
        want = sorted(want, key=lambda t: (-t[1], t[0]))[:cap]
    old = kf._TopK.add

    def add(self, qn, links):  # cut after every item: the many cuts of a huge dump, in small
        old(self, qn, links)
        if self.cap is not None and len(self.qn) > self.cap:
            self._cut()

    kf._TopK.add = add
    try:
        got = kf.kept_items(f, iter([(q, float(n)) for q, n in items]), iter([]), None)
    finally:
        kf._TopK.add = old
    assert got.tolist() == sorted(q for q, _ in want)
    assert got.tolist() == kf.kept_items(f, iter([(q, float(n)) for q, n in items]), iter([]), None).tolist()


def test_the_laptop_profile_embeds_only_shared_names(tmp_path, bundle_path):
    from typer.testing import CliRunner

    from xned.cli.main import app

    items = [
        item("Q11", "John Smith", p31="Q5", sites=_sites(2)),
        item("Q12", "John Smith", p31="Q5", sites=_sites(1)),  # shares a name with Q11
        item("Q13", "Ada Lovelace", p31="Q5", sites=_sites(4)),
    ]
    dump = tmp_path / "wd.json"
    dump.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n", encoding="utf-8")

    def build(name, *extra):
        b = tmp_path / name
        args = ["kb", "build", str(dump), "--bundle", str(b), "--encoder", str(bundle_path / "encoder"), "--no-dense"]
        res = CliRunner().invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        prov = json.loads((b / "manifest.json").read_text(encoding="utf-8"))["provenance"]["kb"]
        return prov["vectors"], np.load(b / "kb" / "entities" / "vectors.npy").shape[0]

    assert build("laptop", "--profile", "laptop") == ("ambiguous", 2)
    info = CliRunner().invoke(app, ["kb", "info", "--bundle", str(tmp_path / "laptop")])
    assert "(2 entities stored, the others embedded when a mention needs them)" in info.output
    assert build("laptop-all", "--profile", "laptop", "--vectors", "all") == ("all", 3)
    assert build("default") == ("all", 3)
