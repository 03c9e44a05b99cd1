import bz2
import functools
import json

import numpy as np
import pytest

from tests.conftest import shared_data
from xned.engine.kb import KB
from xned.errors import KBBuildError
from xned.export.kb.build import build_kb
from xned.export.kb.builder import KBBuilder
from xned.export.kb.options import KBOptions
from xned.export.kb.sources import read_source


def item(qid, en, es=None, aliases=(), p31="Q515", sites=("enwiki",), title=None):
    obj = {
        "type": "item",
        "id": qid,
        "labels": {"en": {"language": "en", "value": en}},
        "descriptions": {"en": {"language": "en", "value": f"description of {en}"}},
        "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
        "claims": {"P31": [{"mainsnak": {"datavalue": {"value": {"id": p31}}}}]},
        "sitelinks": {s: {"site": s, "title": title or en} for s in sites},
    }
    if es:
        obj["labels"]["es"] = {"language": "es", "value": es}
    return obj


def write_dump(path, items, bad_line=False):
    lines = ["["] + [json.dumps(i, ensure_ascii=False) + "," for i in items]
    if bad_line:
        lines.insert(2, '{"type": "item", "id": "Q9", broken')
    lines[-1] = lines[-1].rstrip(",")
    lines.append("]")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(bz2.compress(data) if path.name.endswith(".bz2") else data)


ITEMS = [
    item("Q90", "Paris", "París", ["City of Light"], sites=("enwiki", "eswiki", "frwiki")),
    item("Q830149", "Paris, Texas", aliases=["Paris"]),
    item("Q64", "Berlin", "Berlín", p31="Q515"),
]

XML = """<mediawiki><siteinfo><dbname>enwiki</dbname></siteinfo>
<page><title>Paris</title><ns>0</ns><revision><text>The [[Berlin|German capital]] and [[Paris]].
Also [[Paris, Texas|Paris]] and [[City of light|Paris]] and [[File:x.jpg|thumb]].</text></revision></page>
<page><title>City of light</title><ns>0</ns><redirect title="Paris"/>
<revision><text>#REDIRECT [[Paris]]</text></revision></page>
<page><title>Talk:Paris</title><ns>1</ns><revision><text>[[Berlin]]</text></revision></page>
</mediawiki>
"""


def test_wikidata_and_wikipedia_dump_build(tmp_path):
    dump = tmp_path / "wd.json.bz2"
    write_dump(dump, ITEMS)
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML, encoding="utf-8")
    meta, report = build_kb([dump, xml], tmp_path / "kb")
    kb = KB(tmp_path / "kb")
    ents, pri = kb.lookup("en", "paris")
    assert [kb.qid(e) for e in ents] == ["Q90", "Q830149"]
    assert kb.type_name(kb.index("Q90")) == "Q515"
    assert [kb.qid(e) for e in kb.lookup("en", "german capital")[0]] == ["Q64"]  # anchor text
    assert [kb.qid(e) for e in kb.lookup("en", "city of light")[0]] == ["Q90"]  # alias + redirect
    assert [kb.qid(e) for e in kb.lookup("es", "parís")[0]] == ["Q90"]
    assert kb.record(kb.index("Q64"))[1] == "description of Berlin"


def test_dump_build_with_tiny_runs_is_identical(tmp_path):
    """Sitelinks, anchors, redirects and titles spilled in runs of 2 records merge to the
    same KB as one in-memory run."""
    dump = tmp_path / "wd.json.bz2"
    write_dump(dump, ITEMS)
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML, encoding="utf-8")
    build_kb([dump, xml], tmp_path / "one")
    build_kb([dump, xml], tmp_path / "many", KBOptions(run_records=2))
    for p in (tmp_path / "one").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "many" / p.relative_to(tmp_path / "one")).read_bytes(), p


@pytest.mark.parametrize("name", ["wd.json", "wd.json.bz2"])
def test_parallel_decoding_gives_identical_kb(tmp_path, monkeypatch, name):
    """Workers decode the chunks and keep records in builders of their own: the KB, the
    warnings and the strict errors are those of one process."""
    from xned.export.kb import wikidata

    monkeypatch.setattr(wikidata, "CHUNK_LINES", 2)  # many chunks, for both workers
    items = ITEMS * 3 + [item("Q91", "Filler"), item("Q90", "A later Paris")]  # the first label wins
    items += [item(f"Q{500 + i}", f"Town {i}", f"Villa {i}") for i in range(12)]
    dump = tmp_path / name
    write_dump(dump, items, bad_line=True)
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML, encoding="utf-8")  # resolves its links through the workers' sitelinks
    _, one = build_kb([dump, xml], tmp_path / "a", KBOptions(reader_args={"workers": 1}))
    _, two = build_kb([dump, xml], tmp_path / "b", KBOptions(reader_args={"workers": 2}))
    for p in (tmp_path / "a").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()
    assert one.counts == two.counts and two.counts["bad_json"] == 1 and two.counts["conflict"] >= 1
    assert KB(tmp_path / "b").record(KB(tmp_path / "b").index("Q90"))[0] == "Paris"
    assert KB(tmp_path / "b").lookup("en", "german capital")[0].size  # a link resolved by sitelink
    with pytest.raises(KBBuildError, match=r"wd.json(.bz2)?:3: malformed JSON line"):
        build_kb([dump], tmp_path / "c", KBOptions(strict=True, reader_args={"workers": 2}))
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_sitelinks_are_kept_only_for_a_later_wikipedia_dump(tmp_path, monkeypatch, workers):
    """The Wikipedia titles of a Wikidata dump's items are recorded only when a Wikipedia
    dump follows it in the build (the only reader of them); without one the KB is the same."""
    from xned.export.kb import wikidata

    added = []
    real = wikidata.TitleMap.add
    monkeypatch.setattr(wikidata.TitleMap, "add", lambda self, *a: (added.append(a), real(self, *a)))
    dump = tmp_path / "wd.json"
    write_dump(dump, ITEMS)
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML, encoding="utf-8")
    args = {"workers": workers}
    build_kb([xml, dump], tmp_path / "before", KBOptions(reader_args=args))  # a Wikipedia dump first: no use for them
    build_kb([dump], tmp_path / "alone", KBOptions(reader_args=args))
    if workers == 1:  # (the workers' calls happen in other processes)
        assert added == []
    build_kb([dump, xml], tmp_path / "after", KBOptions(reader_args=args))
    if workers == 1:
        assert ("en", "Berlin", "Q64") in added
    assert KB(tmp_path / "after").lookup("en", "german capital")[0].size  # resolved through a sitelink
    assert not KB(tmp_path / "before").lookup("en", "german capital")[0].size
    # the same KB as a build that records the titles anyway
    monkeypatch.setattr(wikidata, "_consume", functools.partial(_consume_all_titles, wikidata._consume))
    build_kb([dump], tmp_path / "recorded", KBOptions(reader_args={"workers": 1}))
    for p in (tmp_path / "recorded").rglob("*"):
        if p.is_file() and p.name != "meta.json":
            assert p.read_bytes() == (tmp_path / "alone" / p.relative_to(tmp_path / "recorded")).read_bytes(), p


def _consume_all_titles(real, b, path, at, start, sitelinks, recs, bad):
    return real(b, path, at, start, True, recs, bad)


def test_malformed_dump_line_skipped_or_strict(tmp_path):
    dump = tmp_path / "wd.json"
    write_dump(dump, ITEMS, bad_line=True)
    _, report = build_kb([dump], tmp_path / "kb")
    assert report.counts["bad_json"] == 1
    with pytest.raises(KBBuildError, match=r"wd.json:3: malformed JSON line"):
        build_kb([dump], tmp_path / "kb2", KBOptions(strict=True))


def test_truncated_bz2_is_an_error_and_writes_nothing(tmp_path):
    dump = tmp_path / "wd.json.bz2"
    write_dump(dump, ITEMS * 50)
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    with pytest.raises(KBBuildError, match="is truncated"):
        build_kb([dump], tmp_path / "kb")
    assert not (tmp_path / "kb").exists() and not (tmp_path / "kb.incomplete").exists()


def test_real_wikidata_samples(tmp_path):
    d = shared_data("dumps", "wikidata_json_samples_opentapioca")
    b = KBBuilder()
    assert read_source(d / "sample_wikidata_items.json.bz2", b) == 100
    assert read_source(d / "short_stream.json.bz2", b, workers=2) > 600
    b.write(tmp_path / "kb", {})
    kb = KB(tmp_path / "kb")
    be = kb.index("Q31")
    assert kb.record(be)[0] == "Belgium"
    assert be in kb.lookup("de", "belgien", fuzzy=False)[0].tolist()
    assert be in kb.lookup("ja", "ベルギー", fuzzy=False)[0].tolist()


def test_real_enwiki_sample(tmp_path):
    d = shared_data("dumps", "wiki_xml_dump_samples")
    titles = shared_data("kb", "enwiki_title_qid.tsv")
    b = KBBuilder()
    dump = d / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    pages = read_source(dump, b, titles_tsv=titles)
    assert pages > 150
    n_counts = sum(1 for line in b.alias_records.merged() if line.split("\t")[3] == "C")
    assert n_counts > 50


def test_link_probability_from_wikipedia_text(tmp_path):
    dump = tmp_path / "wd.json"
    write_dump(dump, ITEMS)
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML.replace("Also [[", "Paris is big. Paris again. Also [["), encoding="utf-8")
    build_kb([dump, xml], tmp_path / "kb", KBOptions(reader_args={"link_prob": True}))
    kb = KB(tmp_path / "kb")
    assert kb.link_probability("en", "german capital") == 1.0
    # "Paris" is a link 3 times and appears 5 times in the article text
    assert kb.link_probability("en", "paris") == pytest.approx(3 / 5)
    build_kb([dump, xml], tmp_path / "kb2")
    assert np.isnan(KB(tmp_path / "kb2").link_probability("en", "paris"))


def test_links_outside_the_plain_text_are_not_anchors(tmp_path):
    # Links inside an infobox template or a reference are not in the article's plain text:
    # counted as anchors but not as occurrences, they pushed P(link | string) above 1.
    text = (
        "{{Infobox city|twin=[[Berlin|Berlin city]] and [[Berlin|Berlin city]]}}"
        "Paris twins with [[Berlin|Berlin city]].<ref>See [[Berlin|Berlin city]].</ref>"
    )
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(
        "<mediawiki><siteinfo><dbname>enwiki</dbname></siteinfo><page><title>Paris</title><ns>0</ns>"
        f"<revision><text>{text}</text></revision></page></mediawiki>\n",
        encoding="utf-8",
    )
    titles = tmp_path / "titles.tsv"
    titles.write_text("Berlin\tQ64\n", encoding="utf-8")
    b = KBBuilder()
    try:
        read_source(xml, b, titles_tsv=titles, link_prob=True)
        counts = [line.split("\t") for line in b.alias_records.merged() if line.split("\t")[3] == "C"]
    finally:
        b.close()
    assert [(c[1], c[2], float(c[4])) for c in counts] == [("berlin city", "0000000064", 1.0)]


def test_wikipedia_articles_as_training_contexts(tmp_path):
    from xned.export.training_docs import UNRESOLVED, read_training

    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(
        XML.replace("The [[Berlin|", "{{Infobox|x=[[Rome]]}}'''Paris''' and the [[Berlin|"), encoding="utf-8"
    )
    docs = list(read_training([xml], titles={"Berlin": "Q64", "Paris": "Q90"}, source_langs={"en"}))
    assert len(docs) == 1 and docs[0].lang == "en"
    d = docs[0]
    got = [(d.text[s:e], q) for s, e, q in d.spans]
    # templates and file links are gone; the redirect "City of light" comes after the page
    assert got == [
        ("German capital", "Q64"),
        ("Paris", "Q90"),
        ("Paris", UNRESOLVED),
        ("Paris", UNRESOLVED),
    ]
    assert "Rome" not in d.text and "thumb" not in d.text


def test_the_page_iterator_does_not_grow_with_the_dump(tmp_path):
    """Every finished <page> is detached from the root: memory after 40k pages is that of 4k."""
    import tracemalloc

    from xned.export.wikimedia import iter_pages

    def peak(n):
        path = tmp_path / f"w{n}.xml"
        page = "<page><title>T{i}</title><ns>0</ns><revision><text>[[A]] b</text></revision></page>\n"
        path.write_text("<mediawiki>" + "".join(page.format(i=i) for i in range(n)) + "</mediawiki>", encoding="utf-8")
        tracemalloc.start()
        assert sum(1 for _ in iter_pages(path)) == n
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(4_000), peak(40_000)
    assert large < small * 1.5 + 200_000, (small, large)  # ~85 B per kept page would add ~3 MB


def _odd_items():
    """Dump lines of every shape the typed decoder must read as the generic one does."""
    full = item("Q90", "Paris", "París", ["City of Light"], sites=("enwiki", "commonswiki", "frwiki"))
    full["claims"]["P279"] = [{"mainsnak": {"datavalue": {"value": {"id": "Q486972"}}}}]
    full["claims"]["P31"].append({"mainsnak": {"snaktype": "somevalue"}})  # no datavalue
    full["claims"]["P31"].append({"mainsnak": {"datavalue": {"value": "not an item"}}})
    empty = {"type": "item", "id": "Q7", "labels": [], "descriptions": [], "aliases": [], "claims": [], "sitelinks": []}
    odd = [
        full,
        empty,
        {"type": "item", "id": "Q8"},  # nothing but the id
        {"type": "property", "id": "P31", "labels": {"en": {"value": "instance of"}}},
        {"type": "item", "id": "Q9", "labels": {"en": {"language": "en"}, "de": {"value": ""}}},
        {"type": "item", "id": "Q10", "labels": {"en": "a bare string"}},  # not the schema's shape
        {"type": "item", "id": "Q11", "aliases": {"en": {"value": "a map, not a list"}}},
        {"type": "item", "id": 12},
    ]
    return [json.dumps(o, ensure_ascii=False).encode() for o in odd]


def test_typed_item_decoding_reads_what_the_generic_decoder_reads():
    from xned.export.kb import items
    from xned.export.kb.wikidata import _parse_chunk, _parse_entity

    lines = _odd_items()
    try:  # the real samples too, where present
        d = shared_data("dumps", "wikidata_json_samples_opentapioca")
        with bz2.open(d / "short_stream.json.bz2") as f:
            lines += [raw.strip().rstrip(b",") for raw in f if raw.strip() not in (b"[", b"]", b"")]
    except pytest.skip.Exception:
        pass
    typed = fallback = 0
    for line in lines:
        want = _parse_entity(json.loads(line))
        try:
            got = items.parse_item(items.decoder.decode(line))
            typed += 1
        except items.ValidationError:
            fallback += 1
            got = want
        assert got == want, line[:200]
        assert _parse_chunk([line]) == ([want] if want is not None else [], [])
    assert fallback == 2 and typed >= 6  # the bare string and the map of aliases take the generic path
    assert _parse_chunk([b'{"type": "item", "id": "Q1", broken']) == ([], [0])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_build_writes_the_wikipedia_titles_of_its_entities(tmp_path, workers):
    """A build that reads a Wikipedia dump after the Wikidata dump writes the titles of the
    KB's entities (from the sitelinks) beside it; ``BundleTitles`` maps a dump's links with
    them, as ``xned experts train`` does without ``--titles``."""
    import marisa_trie

    from xned.export.training_docs import BundleTitles, read_training

    dump = tmp_path / "wd.json"
    write_dump(dump, [*ITEMS, item("Q1", "Elsewhere", sites=("dewiki",))])
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML, encoding="utf-8")
    meta, _ = build_kb([dump, xml], tmp_path / "kb", KBOptions(reader_args={"workers": workers}))
    assert meta["wiki_titles"] == {"en": 3}
    trie = marisa_trie.Trie()
    trie.load(str(tmp_path / "kb" / "wiki_titles" / "en.marisa"))
    assert sorted(trie.keys()) == ["Berlin\x1fQ64", "Paris\x1fQ90", "Paris, Texas\x1fQ830149"]
    titles = BundleTitles(tmp_path / "kb", ["en"])
    assert titles.get("Paris, Texas") == "Q830149" and titles.get("Elsewhere") is None
    docs = list(read_training([xml], titles=titles, source_langs={"en"}))
    assert [(d.text[s:e], q) for d in docs for s, e, q in d.spans][:2] == [("German capital", "Q64"), ("Paris", "Q90")]
    build_kb([dump], tmp_path / "alone")  # no Wikipedia dump: no titles
    assert not (tmp_path / "alone" / "wiki_titles").exists()
