"""The PyTorch way (``xned bench --torch-model``): the same encoder run by ``transformers``
gives the vectors the ONNX export gives, and links a bundle's documents."""

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

from xned.engine.encoder import Encoder  # noqa: E402
from xned.engine.linker import Linker  # noqa: E402
from xned.export.encoder.optimum_export import export_encoder  # noqa: E402
from xned.export.encoder.torch_baseline import TorchEncoder, torch_way  # noqa: E402
from xned.export.manifest import update_manifest  # noqa: E402

TEXTS = ["Mercury is a planet near the Sun.", "The flight from Paris landed in Tokyo."]
SPANS = [[(0, 7)], [(16, 21), (32, 37)]]


@pytest.fixture(scope="module")
def fp32_encoder(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder"
    export_encoder(tiny_model, out, quantize="none", max_length=64)
    return out


def test_the_torch_model_encodes_as_its_onnx_export(tiny_model, fp32_encoder):
    onnx = Encoder(fp32_encoder, threads=1)
    torch_enc = TorchEncoder(onnx, tiny_model, threads=1)
    for a, b in zip(onnx.embed_mentions(TEXTS, SPANS), torch_enc.embed_mentions(TEXTS, SPANS), strict=True):
        assert a.shape == b.shape
        assert np.min(np.sum(a * b, axis=1)) > 0.9999  # unit vectors: the same up to fp32 rounding


def test_torch_way_links_the_documents_xned_links(tiny_model, fp32_encoder, bundle_path, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    shutil.rmtree(bundle / "encoder")
    shutil.copytree(fp32_encoder, bundle / "encoder")
    update_manifest(bundle)
    docs = [{"text": t, "lang": "en", "mentions": s} for t, s in zip(TEXTS, SPANS, strict=True)]
    xned = sum(len(r.links) for r in Linker.load(bundle, use_corrections=False).link_batch(docs, given_spans=True))
    result = torch_way(bundle, tiny_model, docs, given_spans=True, threads=1)
    assert xned == 3 and result["torch_way_mentions_per_s"] > 0
