"""The encoder's lazy resources: the ONNX session is created in a thread while the tokenizer
loads; its errors surface in the caller, and concurrent first uses share one session."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from xned.engine.encoder import Encoder
from xned.errors import BundleError


def test_a_broken_model_is_a_bundle_error_in_the_caller(bundle_copy):
    (bundle_copy / "encoder" / "model.onnx").write_bytes(b"not an onnx graph")
    enc = Encoder(bundle_copy / "encoder", threads=1)
    with pytest.raises(BundleError, match="cannot be loaded"):
        enc.embed_texts(["Paris"], "query")
    with pytest.raises(BundleError, match="cannot be loaded"):  # and again, not a hang or None
        enc.embed_texts(["Paris"], "query")


def test_concurrent_first_uses_share_one_session(bundle_path, tmp_path):
    root = tmp_path / "encoder"
    shutil.copytree(bundle_path / "encoder", root)
    enc = Encoder(root, threads=1)
    ref = Encoder(root, threads=1).embed_texts(["Paris is a city."], "query")
    out: list[np.ndarray] = []
    sessions: list[object] = []

    def use() -> None:
        out.append(enc.embed_texts(["Paris is a city."], "query"))
        sessions.append(enc.session)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == 4 and all(np.array_equal(v, ref) for v in out)
    assert len({id(s) for s in sessions}) == 1
