"""End-to-end export on a tiny random BERT built in the test (needs the export extra)."""

import json
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("optimum.exporters.onnx")

from xned.errors import ExportError, InputError  # noqa: E402
from xned.export.encoder.optimum_export import export_encoder  # noqa: E402


@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access attempted during export")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_export_quantize_validate(tiny_model, tmp_path, no_network):
    out = tmp_path / "enc"
    cfg = export_encoder(tiny_model, out, max_length=64)
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file()
    on_disk = json.loads((out / "config.json").read_text())
    assert on_disk["validation"]["fp32_max_abs_diff"] <= 1e-4
    assert on_disk["validation"]["int8_pooled_cos_min"] >= 0.99
    assert json.loads((out / "quantization.json").read_text())["weight_type"] == "QInt8"
    assert cfg["dim"] == 32
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops

    from xned.engine.encoder import Encoder

    vecs = Encoder(out).embed_mentions(["hello world"], [[(0, 5)]])
    assert vecs[0].shape == (1, 32)


def _corrupt(path):
    """Scale the first weight matrix of an ONNX file, so parity with PyTorch must fail."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 2 and arr.size > 64:
            init.CopyFrom(numpy_helper.from_array((arr * 1.5).astype(np.float32), init.name))
            break
    onnx.save(model, str(path))


def test_corrupted_onnx_fails_validation(tiny_model, tmp_path, monkeypatch):
    from xned.export.encoder import optimum_export

    real = optimum_export.quantize_int8

    def corrupt_then_quantize(fp32, int8):
        _corrupt(fp32)  # the exported fp32 graph no longer matches the PyTorch model
        return real(fp32, int8)

    monkeypatch.setattr(optimum_export, "quantize_int8", corrupt_then_quantize)
    out = tmp_path / "bad"
    with pytest.raises(ExportError, match="ONNX fp32 output differs from PyTorch"):
        export_encoder(tiny_model, out)
    assert not out.exists()


def test_refuses_output_equal_to_input(tiny_model):
    with pytest.raises(InputError, match="is the input model directory"):
        export_encoder(tiny_model, tiny_model)
