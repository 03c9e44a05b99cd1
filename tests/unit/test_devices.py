"""--device: the execution providers asked of ONNX Runtime, and a CUDA run with the provider
mocked at the session level (this machine has no GPU)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from xned.engine.linker import Linker
from xned.engine.session import device_providers
from xned.errors import InputError
from xned.runner import LinkOptions


def test_devices_name_their_providers_cpu_last():
    assert device_providers("cpu") == ["CPUExecutionProvider"]
    assert device_providers("openvino") == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert device_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(InputError, match="Unknown --device 'gpu'; choose one of auto, cpu, cuda"):
        device_providers("gpu")


def test_auto_takes_an_accelerator_only_where_onnxruntime_has_one(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert device_providers("auto") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert device_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_cuda_run_asks_for_cuda_and_reports_it(monkeypatch, bundle_path):
    real = ort.InferenceSession
    asked: list[list[str]] = []

    class CudaSession:  # ONNX Runtime with a GPU, as far as xned can tell: the CPU does the work
        def __init__(self, path, sess_options=None, providers=None):
            asked.append(list(providers or []))
            self._s = real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._s, name)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", CudaSession)
    linker = LinkOptions(bundle=str(bundle_path), device="cuda", use_corrections=False).load()
    cpu = Linker.load(bundle_path, use_corrections=False)
    text = "The flight from Paris landed near Mercury."
    spans = [(16, 21), (34, 41)]
    on_cuda = linker.link(text, "en", mentions=spans)
    assert asked == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert linker.encoder is not None and linker.encoder.providers_in_use[0] == "CUDAExecutionProvider"
    assert linker.info()["encoder"]["providers"][0] == "CUDAExecutionProvider"
    assert [(lk.qid, lk.score) for lk in on_cuda] == [(lk.qid, lk.score) for lk in cpu.link(text, "en", mentions=spans)]


def test_a_provider_that_cannot_run_the_encoder_falls_back_to_the_cpu(monkeypatch, bundle_path):
    real = ort.InferenceSession
    made: list[list[str]] = []

    class PickySession:  # accepts the graph, fails on it at the first run (OpenVINO on per-row int8)
        def __init__(self, path, sess_options=None, providers=None):
            made.append(list(providers or []))
            self._gpu = (providers or ["CPUExecutionProvider"])[0] != "CPUExecutionProvider"
            self._s = real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def run(self, *a, **k):
            if self._gpu:
                raise RuntimeError("[OpenVINO-EP] FakeQuantize: Argument shapes are inconsistent.")
            return self._s.run(*a, **k)

        def get_providers(self):
            return ["OpenVINOExecutionProvider", "CPUExecutionProvider"] if self._gpu else ["CPUExecutionProvider"]

        def __getattr__(self, name):
            return getattr(self._s, name)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", PickySession)
    with pytest.warns(RuntimeWarning, match="OpenVINOExecutionProvider cannot run the encoder .*inconsistent"):
        linker = LinkOptions(bundle=str(bundle_path), device="openvino", use_corrections=False).load()
        links = linker.link("The flight from Paris landed near Mercury.", "en", mentions=[(16, 21)])
    assert made == [["OpenVINOExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]]
    assert links[0].qid is not None and linker.encoder.providers_in_use == ["CPUExecutionProvider"]
