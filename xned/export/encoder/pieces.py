"""``tokenizer.model``: the encoder's Unigram ``tokenizer.json`` (XLM-R style: precompiled
NFKC character map, Metaspace) as a SentencePiece model with the same pieces, ids and
scores, which the run time loads in a fifth of the memory (``xned.engine.pieces``).
``xned export pieces ENCODER_DIR`` adds it to an encoder (and its bundle's manifest); the
encoder exports write it themselves."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from xned.errors import InputError
from xned.fsutil import atomic_file, atomic_write_text

PIECES_FILE = "tokenizer.model"


def convertible(tok: dict[str, Any]) -> str | None:
    """Why ``tok`` (a parsed ``tokenizer.json``) cannot be converted, or None."""
    model, norm, pre = tok.get("model") or {}, tok.get("normalizer") or {}, tok.get("pre_tokenizer") or {}
    if model.get("type") != "Unigram":
        return f"a {model.get('type')} model (only Unigram converts)"
    parts = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
    if not any(p.get("type") == "Precompiled" for p in parts):
        return "no precompiled character map in the normalizer"
    if pre.get("type") != "Metaspace":
        return f"a {pre.get('type')} pre-tokenizer (only Metaspace converts)"
    vocab = [p for p, _ in model.get("vocab", [])]
    if vocab[:4] != ["<s>", "<pad>", "</s>", "<unk>"] or model.get("unk_id") != 3:
        return "a vocabulary that does not start <s> <pad> </s> <unk>"
    return None


def model_bytes(tok: dict[str, Any]) -> bytes:
    """The serialized SentencePiece ``ModelProto`` of a convertible ``tokenizer.json``."""
    import importlib

    pb: Any = importlib.import_module("sentencepiece.sentencepiece_model_pb2")  # needs protobuf
    model = tok["model"]
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.vocab_size = len(model["vocab"])
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 3, 0, 2, 1
    m.trainer_spec.byte_fallback = bool(model.get("byte_fallback"))
    norm = tok["normalizer"]
    parts = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
    charsmap = next(p for p in parts if p.get("type") == "Precompiled")["precompiled_charsmap"]
    m.normalizer_spec.name = "nmt_nfkc"
    m.normalizer_spec.precompiled_charsmap = base64.b64decode(charsmap)
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = True
    m.normalizer_spec.escape_whitespaces = True
    special = {a["content"] for a in tok.get("added_tokens", []) if a.get("special")}
    kind = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(model["vocab"]):
        p = m.pieces.add()
        p.piece, p.score = piece, float(score)
        p.type = kind.UNKNOWN if i == 3 else kind.CONTROL if piece in special else kind.NORMAL
    return bytes(m.SerializeToString())


def write_pieces(encoder_dir: Path) -> bool:
    """Write ``tokenizer.model`` next to the encoder's ``tokenizer.json`` and name it in
    ``config.json`` (``"pieces"``). False (nothing written) when the tokenizer does not
    convert; the run time then keeps ``tokenizers``."""
    encoder_dir = Path(encoder_dir)
    cfg_path = encoder_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    tok_path = encoder_dir / cfg.get("tokenizer", "tokenizer.json")
    if not tok_path.is_file():
        raise InputError(f"{tok_path} not found: {encoder_dir} is not an encoder directory.")
    tok = json.loads(tok_path.read_text(encoding="utf-8"))
    if convertible(tok) is not None:
        return False
    with atomic_file(encoder_dir / PIECES_FILE, "wb") as f:
        f.write(model_bytes(tok))
    cfg["pieces"] = PIECES_FILE
    atomic_write_text(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return True
