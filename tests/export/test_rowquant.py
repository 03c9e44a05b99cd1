"""Per-row activation scales (``xned export row-scales``): a dynamically quantized model whose
rows depend on their batch neighbours is rewritten into one whose rows do not."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _quantized_fixture(bundle_copy):
    """The fixture bundle with its encoder quantized per batch, as ``quantize_dynamic`` does."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    enc = bundle_copy / "encoder"
    fp32 = enc / "model.fp32.onnx"
    shutil.move(enc / "model.onnx", fp32)
    quantize_dynamic(str(fp32), str(enc / "model.onnx"), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    fp32.unlink()
    cfg = json.loads((enc / "config.json").read_text())
    cfg["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic", "activations": "dynamic uint8"}
    (enc / "config.json").write_text(json.dumps(cfg))
    return enc


def _rows(path, seqs):
    from xned.export.encoder.rowquant import _outputs

    return _outputs(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), seqs, 0)


SEQS = [[2, 5, 6, 7, 3], [2, 9, 3], [2, 11, 12, 13, 14, 15, 16, 3]]


def test_rewrite_makes_rows_independent_of_their_batch(bundle_copy):
    from xned.export.encoder.rowquant import rewrite_encoder

    enc = _quantized_fixture(bundle_copy)
    before_alone = [_rows(enc / "model.onnx", [s])[0] for s in SEQS]
    before_batched = _rows(enc / "model.onnx", SEQS)
    assert max(np.abs(a - b).max() for a, b in zip(before_alone, before_batched, strict=True)) > 1e-4
    ops_before = Counter(n.op_type for n in onnx.load(str(enc / "model.onnx")).graph.node)

    report = rewrite_encoder(enc)

    assert report["replaced"] == ops_before["DynamicQuantizeLinear"] >= 1
    ops = Counter(n.op_type for n in onnx.load(str(enc / "model.onnx")).graph.node)
    assert ops["DynamicQuantizeLinear"] == 0 and ops["MatMulInteger"] == ops_before["MatMulInteger"]
    alone = [_rows(enc / "model.onnx", [s])[0] for s in SEQS]
    batched = _rows(enc / "model.onnx", SEQS)
    assert max(np.abs(a - b).max() for a, b in zip(alone, batched, strict=True)) <= 1e-6
    for a, b in zip(alone, before_alone, strict=True):  # still the same model, up to quantization
        assert np.abs(a - b).max() < 0.05
    cfg = json.loads((enc / "config.json").read_text())
    assert cfg["quantization"]["activations"].startswith("per-row")
    assert rewrite_encoder(enc)["replaced"] == 0  # idempotent


def test_engine_runs_a_per_batch_model_one_row_at_a_time(bundle_copy):
    from xned.engine.encoder import Encoder

    enc = _quantized_fixture(bundle_copy)
    with pytest.warns(RuntimeWarning, match="xned export row-scales"):
        old = Encoder(enc)
    assert old.batch_rows == 1
    from xned.export.encoder.rowquant import rewrite_encoder

    rewrite_encoder(enc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = Encoder(enc)
    assert new.row_stable and new.batch_rows is None


def test_cli_rewrites_and_rehashes_the_bundle(bundle_copy):
    from typer.testing import CliRunner

    from xned.cli.main import app
    from xned.engine.bundle import check_files, read_manifest
    from xned.export.manifest import update_manifest

    enc = _quantized_fixture(bundle_copy)
    update_manifest(bundle_copy)
    res = CliRunner().invoke(app, ["export", "row-scales", str(enc)])
    assert res.exit_code == 0, res.output
    assert "Rewrote 1 quantization nodes" in res.output
    check_files(read_manifest(bundle_copy), verify=True)
    res = CliRunner().invoke(app, ["export", "row-scales", str(enc)])
    assert res.exit_code == 0 and "already has per-row scales" in res.output


def test_cli_refuses_a_model_that_is_not_dynamically_quantized(bundle_copy, capsys):
    from xned.cli.main import main

    assert main(["export", "row-scales", str(bundle_copy / "encoder")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "not a dynamically quantized model" in err
