"""Local identities for unknown entities (xned link --nil-ids, xned.engine.nil)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from xned.cli.main import app
from xned.engine.linker import Linker
from xned.engine.nil import NilMention, NilStore, group_document


def _m(text: str, name: str, doc: int = 0, vec=None) -> NilMention:
    a = text.index(name)
    return NilMention(doc, a, a + len(name), name, vec)


def _groups(text: str, names: list[str]) -> list[list[str]]:
    return sorted(sorted(m.text for m in g.members) for g in group_document([_m(text, n) for n in names]))


def test_names_in_a_document_group_by_their_structure():
    text = (
        "Amaia Etxeberria spoke. Later Etxeberria and Amaia left; "
        "the Euskal Herriko Txistulari Elkartea (EHTE) and Jon Ugarte."
    )
    assert _groups(
        text, ["Amaia Etxeberria", "Etxeberria", "Amaia", "Euskal Herriko Txistulari Elkartea", "EHTE", "Jon Ugarte"]
    ) == [
        ["Amaia", "Amaia Etxeberria", "Etxeberria"],
        ["EHTE", "Euskal Herriko Txistulari Elkartea"],
        ["Jon Ugarte"],
    ]
    # the parts of a Japanese name are separated by a middle dot
    ja = "スティーブ・ジョブズは言った。ジョブズは笑った。"
    assert _groups(ja, ["スティーブ・ジョブズ", "ジョブズ"]) == [["ジョブズ", "スティーブ・ジョブズ"]]
    # a short name that fits two longer ones stays on its own
    two = "Amaia Etxeberria and Mikel Etxeberria met; Etxeberria spoke."
    assert _groups(two, ["Amaia Etxeberria", "Mikel Etxeberria", "Etxeberria"]) == [
        ["Amaia Etxeberria"],
        ["Etxeberria"],
        ["Mikel Etxeberria"],
    ]


def test_a_names_key_drops_what_surrounds_the_name():
    from xned.engine.nil_names import name_key, plain_key

    cases = {
        "M. Ador, conseiller fédéral": "ador",
        "Hr. de Longrée": "de longrée",
        "Marschalls Foch": "foch",
        "Apple CEO Steve Jobs": "steve jobs",
        "Ford's chief executive officer, William Clay Ford Jr.": "william clay ford jr",
        "Nashville, Tenn.": "nashville",
        "Gerald R. Ford": "gerald ford",
        "Apsilanti's": "apsilanti",
        "S.F.": "sf",
        "Nouri al-Maliki": "nouri maliki",
        "ロサンゼルスを拠点とするノースロップ・グラマン": "ノースロップ グラマン",
        "米国最大の株価指数、ダウ・ジョーンズ": "ダウ ジョーンズ",
        "バラク・オバマ大統領": "バラク オバマ",
        "同社CEOスティーブ・ジョブズ": "スティーブ ジョブズ",  # no particle between
        "Apple幹部スティーブ・ジョブズ": "スティーブ ジョブズ",
        "アップル社共同創設者スティーブ・ジョブズ": "スティーブ ジョブズ",
        "エアバスA380": "エアバスa380",  # no katakana name at the end: as it is
        "東京ディズニーランド": "東京ディズニーランド",  # one katakana word: kept whole
        "Amaia Etxeberria": "amaia etxeberria",  # nothing around it
        "Mr.": "mr",  # nothing left: the plain key
    }
    assert {t: name_key(t) for t in cases} == cases
    assert plain_key("M. Ador, conseiller fédéral") == "m. ador, conseiller fédéral"
    # in a document: a title, a possessive, a genitive, a CJK description ending in the name
    text = "M. Gustave Ador spoke; later M. Ador and Gobat met, and Gobats plan failed. 米国のダウ・ジョーンズ"
    assert _groups(text, ["M. Gustave Ador", "M. Ador", "Gobat", "Gobats"]) == [
        ["Gobat", "Gobats"],
        ["M. Ador", "M. Gustave Ador"],
    ]


def test_across_documents_a_title_or_a_genitive_does_not_split_a_name(tmp_path):
    store = NilStore(tmp_path)
    v = _unit(7)
    texts = ["General Foch arrived.", "Marschall Foch spoke.", "Fochs Armee siegte."]
    ids = store.assign(
        [_m(texts[0], "General Foch", 0, v), _m(texts[1], "Marschall Foch", 1, v), _m(texts[2], "Fochs", 2, v)],
        texts,
        ["a", "b", "c"],
    )
    assert len(set(ids.values())) == 1 and len(ids) == 3


def _unit(seed: int, dim: int = 32, near=None, noise: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim) if near is None else near + noise * rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_across_documents_the_context_decides(tmp_path):
    store = NilStore(tmp_path)
    harbour, football = _unit(1), _unit(2)
    texts = [
        "Amaia Etxeberria opened the harbour.",
        "Etxeberria spoke of the harbour again.",
        "Etxeberria scored twice.",
    ]
    ids = store.assign(
        [
            _m(texts[0], "Amaia Etxeberria", 0, _unit(3, near=harbour)),
            _m(texts[1], "Etxeberria", 1, _unit(4, near=harbour)),
            _m(texts[2], "Etxeberria", 2, _unit(5, near=football)),
        ],
        texts,
        ["a", "b", "c"],
    )
    first, same, other = (ids[(d, *span)] for d, span in ((0, (0, 16)), (1, (0, 10)), (2, (0, 10))))
    assert first == same != other and first.startswith("NIL:") and len(first) == 14
    # the same documents into a fresh store: the same ids; merging: the kept id from then on
    again = NilStore(tmp_path / "fresh")
    assert again.assign([_m(texts[0], "Amaia Etxeberria", 0, _unit(3, near=harbour))], texts[:1], ["a"]) == {
        (0, 0, 16): first
    }
    assert store.merge(first, other) == first and store.resolve(other) == first
    later = store.assign([_m(texts[2], "Etxeberria", 0, _unit(6, near=football))], texts[2:], ["d"])
    assert later == {(0, 0, 10): first}
    assert [c["nil_id"] for c in store.clusters()] == [first]
    with pytest.raises(KeyError):
        store.merge(first, "NIL:0000000000")


def test_link_gives_nil_ids_and_the_cli_lists_and_exports_them(tmp_path, bundle_path):
    state = tmp_path / "state"
    linker = Linker.load(bundle_path, state=state, nil_ids=True)
    text = "Amaia Etxeberria met Mikel Ugarte in Tokyo; Etxeberria spoke."
    spans = [(0, 16), (21, 33), (37, 42), (44, 54)]
    links = linker.link(text, "en", mentions=spans)
    nil = {lk.text: lk.nil_id for lk in links if lk.qid is None}
    assert set(nil) == {"Amaia Etxeberria", "Mikel Ugarte", "Etxeberria"}
    assert nil["Etxeberria"] == nil["Amaia Etxeberria"] != nil["Mikel Ugarte"]
    assert all(lk.nil_id is None for lk in links if lk.qid is not None)  # Tokyo is linked
    assert Linker.load(bundle_path, state=state).link(text, "en", mentions=spans)[0].nil_id is None  # off by default
    runner = CliRunner()
    args = ["--bundle", str(bundle_path), "--state", str(state)]
    out = runner.invoke(app, ["nil", "list", "--json", *args])
    assert out.exit_code == 0, out.output
    listed = [json.loads(line) for line in out.output.splitlines()]
    assert {c["nil_id"] for c in listed} == set(nil.values()) and listed[0]["mentions"] == 2
    exported = tmp_path / "nil.jsonl"
    assert runner.invoke(app, ["nil", "export", "-o", str(exported), *args]).exit_code == 0
    assert [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()] == listed


_WRITER = """
import json, sys
from xned.engine.linker import Linker
linker = Linker.load(sys.argv[1], state=sys.argv[2], nil_ids=True, use_corrections=False)
text = "Amaia Etxeberria opened the new harbour of the town."
docs = [{"id": f"{sys.argv[3]}-{i}", "lang": "en", "text": text, "mentions": [(0, 16)]} for i in range(40)]
ids = [lk.nil_id for r in linker.link_stream(docs, chunk_size=4) for lk in r.links]
print(json.dumps(ids))
"""


def test_two_processes_linking_at_once_share_one_cluster(tmp_path, bundle_path):
    state = tmp_path / "state"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(bundle_path), str(state), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    done = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in done]
    outs = [json.loads(out) for out, _ in done]
    ids = {i for out in outs for i in out}
    assert len(ids) == 1 and None not in ids  # one unknown person: one id, in both processes
    linker = Linker.load(bundle_path, state=state, nil_ids=True)
    (cluster,) = linker.nil.clusters()
    assert cluster["mentions"] == 80  # no mention lost


_LINK_AFTER = """
import json, sys
from xned.engine.linker import Linker
linker = Linker.load(sys.argv[1], state=sys.argv[2], nil_ids=True)
text = "Later Amaia Etxeberria opened the new harbour."
print(json.dumps([[lk.text, lk.qid, lk.label, lk.nil_id] for lk in linker.link(text, "en", mentions=[(6, 22)])]))
"""


def test_a_promoted_cluster_is_linked_in_a_new_process(tmp_path, built_bundle):
    bundle, state = built_bundle, tmp_path / "state"
    linker = Linker.load(bundle, state=state, nil_ids=True)
    text = "Amaia Etxeberria opened the harbour; Etxeberria spoke."
    (nil_id,) = {lk.nil_id for lk in linker.link(text, "en", mentions=[(0, 16), (37, 47)])}
    args = ["--bundle", str(bundle), "--state", str(state)]
    out = CliRunner().invoke(
        app, ["nil", "promote", nil_id, "--label", "Amaia Etxeberria", "--description", "harbour engineer", *args]
    )
    assert out.exit_code == 0, out.output
    qid = "Q9" + str(int(nil_id[4:], 16) % 10**9).zfill(9)
    p = subprocess.run([sys.executable, "-c", _LINK_AFTER, str(bundle), str(state)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [["Amaia Etxeberria", qid, "Amaia Etxeberria", None]]
    listed = CliRunner().invoke(app, ["nil", "list", "--json", *args])
    assert json.loads(listed.output.splitlines()[0])["promoted_to"] == qid
    bad = CliRunner().invoke(app, ["nil", "promote", "NIL:0000000000", "--label", "x", *args])
    assert bad.exit_code == 1 and "No NIL cluster NIL:0000000000" in str(bad.exception)


def test_pronouns_and_descriptions_get_no_identity(tmp_path):
    from xned.engine.nil import is_name

    assert [is_name(t) for t in ("Etxeberria", "iPod", "ジョブズ", "同志社大学")] == [True] * 4
    assert [is_name(t) for t in ("he", "the aircraft", "彼", "その飛行機", "同指数")] == [False] * 5
    # a CJK description ends in a common noun, not a name ("the world's largest airliner")
    assert not is_name("世界最大の旅客機") and is_name("ロサンゼルスを拠点とするノースロップ・グラマン")
    # capitalized at a sentence start: still a pronoun, or an article before common nouns
    assert [is_name(t) for t in ("He", "I", "Il", "Er", "The aircraft", "La compagnie")] == [False] * 6
    assert [is_name(t) for t in ("US", "ELLE", "The Beatles", "The A380")] == [True] * 4
    text = "Etxeberria said he would come."
    ids = NilStore(tmp_path).assign([_m(text, "Etxeberria"), _m(text, "he")], [text], ["a"])
    assert list(ids) == [(0, 0, 10)]


def test_a_store_that_cannot_be_opened_is_a_clear_error(tmp_path):
    from xned.errors import InputError

    (tmp_path / "blocked").write_text("a file where the store's directory should be")
    with pytest.raises(InputError, match="cannot be opened .*--state DIR"):
        NilStore(tmp_path / "blocked" / "nil")


def test_a_cluster_that_holds_two_entities_is_split_by_name(tmp_path, bundle_path):
    store = NilStore(tmp_path)
    harbour = _unit(1)
    texts = ["Amaia Etxeberria opened the harbour.", "Jon Ugarte opened the harbour."]
    ids = store.assign(
        [
            _m(texts[0], "Amaia Etxeberria", 0, _unit(2, near=harbour)),
            _m(texts[1], "Jon Ugarte", 1, _unit(3, near=harbour)),
        ],
        texts,
        ["a", "b"],
    )
    amaia, jon = ids[(0, 0, 16)], ids[(1, 0, 10)]
    assert store.merge(amaia, jon) == amaia  # an analyst's mistake
    with pytest.raises(ValueError, match="not a name"):
        store.split(amaia, ["Mikel Ugarte"])
    with pytest.raises(ValueError, match="nothing would remain"):
        store.split(amaia, ["Amaia Etxeberria", "jon ugarte"])
    new = store.split(jon, ["Jon Ugarte"])  # the merged id stands for the cluster
    assert new not in (amaia, jon) and new.startswith("NIL:")
    clusters = {c["nil_id"]: c for c in store.clusters()}
    assert clusters[new]["names"] == ["jon ugarte"] and clusters[amaia]["names"] == ["amaia etxeberria"]
    assert [e["mention"] for e in clusters[new]["examples"]] == ["Jon Ugarte"]
    assert (clusters[new]["mentions"], clusters[amaia]["mentions"]) == (1, 1)
    # later mentions go by name: "Jon Ugarte" and "Ugarte" to the new cluster
    later = store.assign(
        [_m("Jon Ugarte came back.", "Jon Ugarte", 0, _unit(4, near=harbour))], ["Jon Ugarte came back."], ["c"]
    )
    assert later == {(0, 0, 10): new}
    ugarte = store.assign([_m("Ugarte smiled.", "Ugarte", 0, _unit(5, near=harbour))], ["Ugarte smiled."], ["d"])
    assert ugarte == {(0, 0, 6): new}
    smiled = "Amaia Etxeberria smiled."
    amaia_again = store.assign([_m(smiled, "Amaia Etxeberria", 0, _unit(6, near=harbour))], [smiled], ["e"])
    assert amaia_again == {(0, 0, 16): amaia}
    with pytest.raises(KeyError):
        store.split("NIL:0000000000", ["x"])


def test_nil_split_on_the_command_line(tmp_path, bundle_path):
    state = tmp_path / "state"
    linker = Linker.load(bundle_path, state=state, nil_ids=True)
    text = "Amaia Etxeberria met Mikel Ugarte in Tokyo."
    links = linker.link(text, "en", mentions=[(0, 16), (21, 33)])
    a, m = (lk.nil_id for lk in links)
    runner = CliRunner()
    args = ["--bundle", str(bundle_path), "--state", str(state)]
    assert runner.invoke(app, ["nil", "merge", a, m, *args]).exit_code == 0
    out = runner.invoke(app, ["nil", "split", a, "--name", "Mikel Ugarte", *args])
    assert out.exit_code == 0, out.output
    new = out.stdout.strip().splitlines()[-1]
    assert new.startswith("NIL:") and new not in (a, m)
    bad = runner.invoke(app, ["nil", "split", a, "--name", "Nobody Here", *args])
    assert bad.exit_code == 1 and "not a name" in str(bad.exception)


def test_a_lone_name_that_is_a_word_of_many_stored_names_stays_on_its_own(tmp_path):
    """Bounded work per document: a one-word name that is a word of more stored names than
    ``MAX_PART_CLUSTERS`` ("Smith" among 33 Smiths) compares with none of them."""
    from xned.engine.nil import MAX_PART_CLUSTERS

    store = NilStore(tmp_path)
    v = _unit(11)
    names = [f"Person{i} Smith" for i in range(MAX_PART_CLUSTERS + 1)]
    texts = [f"{n} spoke." for n in names]
    pairs = enumerate(zip(texts, names, strict=True))
    many = store.assign(
        [_m(t, n, i, _unit(100 + i)) for i, (t, n) in pairs], texts, [str(i) for i in range(len(texts))]
    )
    assert len(set(many.values())) == len(names)
    # its context is the first Smith's: below the cap it would join that cluster
    lone = store.assign([_m("Smith came.", "Smith", 0, _unit(100))], ["Smith came."], ["x"])
    assert set(lone.values()).isdisjoint(many.values())
    # with one stored Smith, the same lone name joins it when the contexts agree
    few = NilStore(tmp_path / "few")
    first = few.assign([_m(texts[0], names[0], 0, v)], texts[:1], ["a"])
    again = few.assign([_m("Smith came.", "Smith", 0, v)], ["Smith came."], ["b"])
    assert set(again.values()) == set(first.values())
