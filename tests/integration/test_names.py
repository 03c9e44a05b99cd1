"""Name retrieval (kb/names.usearch): a mention string finds an entity by its label in another
script, through the real multilingual encoder of the default bundle."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from xned import Linker
from xned.config import default_bundle_path
from xned.errors import BundleError, InputError
from xned.export.bundle_ops import BundleBuild, build_kb_into_bundle, index_bundle
from xned.export.manifest import update_manifest

ENCODER = default_bundle_path() / "encoder"
pytestmark = pytest.mark.skipif(not (ENCODER / "config.json").is_file(), reason="no default bundle encoder")

# English labels only: no Japanese, Russian or Arabic alias anywhere
KB = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q66\tcompany\tBoeing\tAmerican aerospace manufacturer\tpop:100\t
Q2311\tcompany\tAirbus\tEuropean aerospace manufacturer\tpop:100\t
Q53268\tcompany\tToyota\tJapanese car maker\tpop:100\t
Q27597\tcompany\tFiat\tItalian car maker\tpop:100\t
Q181114\tcompany\tChrysler\tAmerican car maker\tpop:100\t
Q9584\tcompany\tHonda\tJapanese car and motorcycle maker\tpop:100\t
Q213731\tcompany\tEmbraer\tBrazilian aerospace manufacturer\tpop:100\t
Q215392\tcompany\tBombardier\tCanadian manufacturer\tpop:100\t
Q487907\tcompany\tBank of America\tAmerican bank\tpop:100\t
Q7501\tcompany\tQatar Airways\tairline of Qatar\tpop:100\t
"""
CASES = [("ボーイング", "Q66"), ("エアバス", "Q2311"), ("トヨタ", "Q53268"), ("フィアット", "Q27597"), ("Боинг", "Q66")]


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    (root / "kb.tsv").write_text(KB, encoding="utf-8")
    bundle = root / "bundle"
    meta, _ = build_kb_into_bundle([root / "kb.tsv"], bundle, BundleBuild(encoder=ENCODER, threads=1, names=True))
    assert meta["entities"] == 10
    return bundle


def _mention(linker, text, span, lang):
    return linker.analyze([{"text": text, "lang": lang, "mentions": [span]}])[0].mentions[0]


@pytest.mark.parametrize(("surface", "qid"), CASES)
def test_a_name_in_another_script_finds_its_entity(named, surface, qid):
    text = f"{surface}が新しい契約を発表した。" if surface != "Боинг" else f"{surface} объявил о новом контракте."
    span, lang = (0, len(surface)), None  # the KB has only an English table: lookup uses every table
    plain = Linker.load(named, names_k=0, dense_k=0, threads=1, use_corrections=False)
    assert not len(_mention(plain, text, span, lang).ents)  # no alias names it in this script
    linker = Linker.load(named, dense_k=0, threads=1, verify=True, use_corrections=False)  # manifest covers it
    f = _mention(linker, text, span, lang)
    qids = [linker.kb.qid(int(e)) for e in f.ents]
    assert f.name is not None and qids[int(np.argmax(f.name))] == qid  # its label is the nearest name
    assert f.dense is not None and f.dense.all() and not f.priors.any()  # retrieved: flagged, prior 0
    # the calibrated fusion sees the cosine as the `name` feature
    assert linker.scorer.features(f.priors, f.sims, f.expert, f.hub, f.dense, f.name)[:, 7].tolist() == pytest.approx(
        f.name.tolist()
    )


def test_alias_candidates_keep_their_place_and_get_the_feature(named):
    linker = Linker.load(named, dense_k=0, threads=1, use_corrections=False)
    f = _mention(linker, "Boeing and Airbus compete.", (0, 6), "en")
    assert linker.kb.qid(int(f.ents[0])) == "Q66" and f.priors[0] > 0  # the exact alias match first
    assert f.dense is not None and f.dense[0] == 0 and f.dense[1:].all()
    # the same string as its label: the highest cosine (not 1: int8 activations are scaled per
    # batch, and centring on the mean of ten labels magnifies that)
    assert f.name is not None and f.name[0] == f.name.max() > 0.8 > f.name[1:].max()
    assert len(set(f.ents.tolist())) == len(f.ents) <= min(linker.top_k, 1 + linker.names.k)
    # several mentions in one batch: the same candidates as one by one
    both = linker.analyze([{"text": "Boeing and Airbus compete.", "lang": "en", "mentions": [(0, 6), (11, 17)]}])
    assert both[0].mentions[0].ents.tolist() == f.ents.tolist()
    assert linker.link("Boeing and Airbus compete.", lang="en", mentions=[(0, 6)])[0].qid == "Q66"
    assert linker.info()["name_index"] and not Linker.load(named, names_k=0).info()["name_index"]


def test_the_index_is_deterministic_and_rebuilt_by_kb_index(named, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(named, copy)
    first = (copy / "kb" / "names.usearch").read_bytes()
    info = index_bundle(copy, dense=False, names=True, threads=1)
    assert info["name_index"]["labels"] == 10 and "dense_index" not in info
    assert (copy / "kb" / "names.usearch").read_bytes() == first


def test_broken_index_is_a_bundle_error(named, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(named, copy)
    (copy / "kb" / "names_mean.npy").unlink()
    with pytest.raises(BundleError, match="names_mean.npy"):  # the manifest lists it
        Linker.load(copy, dense_k=0)
    update_manifest(copy)  # as if built without it
    with pytest.raises(BundleError, match="names_mean.npy"):
        Linker.load(copy, dense_k=0)
    assert Linker.load(copy, dense_k=0, names_k=0).link("トヨタ", mentions=[(0, 3)])  # or without it
    np.save(copy / "kb" / "names_mean.npy", np.zeros(384, np.float32))
    (copy / "kb" / "names.usearch").write_bytes(b"not an index" * 20)
    update_manifest(copy)
    with pytest.raises(BundleError, match="names.usearch"):
        Linker.load(copy, dense_k=0).link("トヨタ", mentions=[(0, 3)])
    index_bundle(copy, dense=False, names=True)  # a rebuild repairs it
    assert Linker.load(copy, dense_k=0, verify=True).link("トヨタ", mentions=[(0, 3)])


def test_kb_index_needs_an_encoder_for_names(bundle_copy):
    shutil.rmtree(bundle_copy / "encoder")
    update_manifest(bundle_copy)
    with pytest.raises(InputError, match="no encoder"):
        index_bundle(bundle_copy, dense=False, names=True)


def test_a_name_hit_without_a_stored_vector_is_not_embedded(tmp_path):
    """`--vectors ambiguous`: only the two Hondas share a name and get a vector; a name hit
    without one gets the typical cosine (embedding every name hit cost more than the
    context pass)."""
    (tmp_path / "kb.tsv").write_text(KB + "Q1000001\tperson\tHonda\ta racing driver\tpop:1\t\n", encoding="utf-8")
    bundle = tmp_path / "bundle"
    meta, _ = build_kb_into_bundle(
        [tmp_path / "kb.tsv"], bundle, BundleBuild(encoder=ENCODER, threads=1, vectors="ambiguous", names=True)
    )
    assert meta["vectors"]["entities"] == 2 and (bundle / "kb" / "names.usearch").is_file()
    linker = Linker.load(bundle, dense_k=0, threads=1, use_corrections=False)
    f = _mention(linker, "ボーイングが新しい契約を発表した。", (0, 5), None)
    assert linker.kb.qid(int(f.ents[int(np.argmax(f.name))])) == "Q66"
    assert linker.entity_vectors.computed == 0
    assert f.sims is not None and f.sims.tolist() == pytest.approx([linker.scorer.sim_typical] * len(f.ents))
