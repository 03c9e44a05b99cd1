"""Dense candidate retrieval (kb/dense.usearch): candidates for mentions no alias names."""

from __future__ import annotations

import numpy as np
import pytest

from xned import Linker
from xned.errors import BundleError
from xned.export.bundle_ops import index_bundle
from xned.export.manifest import update_manifest


@pytest.fixture()
def dense_bundle(bundle_copy):
    info = index_bundle(bundle_copy)["dense_index"]
    assert info["entities"] == 38 and (bundle_copy / "kb" / "dense.usearch").is_file()
    assert not (bundle_copy / "kb" / "names.usearch").exists()
    return bundle_copy


def test_the_index_is_deterministic(dense_bundle):
    """Same vectors, same bytes: compacted and sharded builds are compared byte for byte."""
    path = dense_bundle / "kb" / "dense.usearch"
    first = path.read_bytes()
    index_bundle(dense_bundle)
    assert path.read_bytes() == first


def _analyze(linker, text, span):
    return linker.analyze([{"text": text, "lang": "en", "mentions": [span]}])[0].mentions[0]


def test_a_mention_without_alias_gets_retrieved_candidates(dense_bundle, linker):
    text, span = "They sailed down the Seine capital of France.", (21, 34)
    assert not len(_analyze(linker, text, span).ents)  # no alias names "Seine capital"
    dense = Linker.load(dense_bundle, verify=True)  # the manifest covers the index
    f = _analyze(dense, text, span)
    qids = [dense.kb.qid(int(e)) for e in f.ents]
    assert qids[0] == "Q90" and len(qids) == dense.dense_k
    assert f.dense is not None and f.dense.tolist() == [1.0] * len(qids)
    assert f.priors.tolist() == [0.0] * len(qids)
    # the features carry the flag; hand-set weights give it nothing, so it stays NIL
    assert dense.scorer.features(f.priors, f.sims, f.expert, f.hub, f.dense)[:, 6].tolist() == [1.0] * len(qids)
    assert dense.link(text, lang="en", mentions=[span])[0].qid is None
    assert not len(_analyze(Linker.load(dense_bundle, dense_k=0), text, span).ents)


def test_retrieved_candidates_follow_the_alias_ones(dense_bundle):
    dense = Linker.load(dense_bundle)
    f = _analyze(dense, "Paris is the capital of France.", (0, 5))
    alias = Linker.load(dense_bundle, dense_k=0)
    g = _analyze(alias, "Paris is the capital of France.", (0, 5))
    n = len(g.ents)
    assert f.ents[:n].tolist() == g.ents.tolist()  # exact matches keep their place
    assert f.dense is not None and f.dense[:n].tolist() == [0.0] * n and f.dense[n:].all()
    assert len(set(f.ents.tolist())) == len(f.ents) <= dense.top_k
    # a mention and several: one batched search gives the same candidates
    both = dense.analyze([{"text": "Paris is the capital of France.", "lang": "en", "mentions": [(0, 5), (24, 30)]}])
    assert both[0].mentions[0].ents.tolist() == f.ents.tolist()


def test_broken_or_mismatched_index_is_a_bundle_error(dense_bundle, bundle_path):
    (dense_bundle / "kb" / "dense_mean.npy").unlink()
    with pytest.raises(BundleError, match="dense_mean.npy"):
        Linker.load(dense_bundle)
    np.save(dense_bundle / "kb" / "dense_mean.npy", np.zeros(5, np.float32))
    (dense_bundle / "kb" / "dense.usearch").write_bytes(b"not an index at all" * 10)
    with pytest.raises(BundleError, match="dense.usearch"):  # the manifest's size check
        Linker.load(dense_bundle)
    update_manifest(dense_bundle)  # as if built so: found on the first search
    linker = Linker.load(dense_bundle)
    with pytest.raises(BundleError, match="dense.usearch"):
        linker.link("Paris is nice.", lang="en", mentions=[(0, 5)])
    index_bundle(dense_bundle)  # a rebuild repairs it
    assert Linker.load(dense_bundle, verify=True).link("Paris is nice.", lang="en", mentions=[(0, 5)])[0].qid
