"""``xned export encoder``: a local Hugging Face encoder -> a verified bundle encoder.

Steps: Optimum ONNX export (task feature-extraction, fp32) -> dynamic signed-int8
quantization (``onnxruntime.quantization.quantize_dynamic``, QInt8 weights, per-channel;
the exact settings are written to ``quantization.json``) -> validation on a fixed
multilingual probe set against the PyTorch model: fp32 max-abs-diff of the hidden states
must be <= 1e-4 and the int8 mean-pooled cosine >= 0.99, else the export fails and
nothing is written. Everything runs offline (``HF_HUB_OFFLINE=1``); the output is written
to ``OUT.incomplete`` and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xned.errors import ExportError, InputError
from xned.export import require
from xned.export.encoder.pieces import write_pieces
from xned.export.encoder.prune import prune_checkpoint
from xned.export.encoder.rowquant import ACTIVATIONS, per_row_activations
from xned.fsutil import check_replaceable_dir, replace_dir

PROBES = [
    ("en", "The European Union agreed on new rules for the steel industry in Brussels."),
    ("es", "El presidente del Gobierno visitó Barcelona y se reunió con el alcalde."),
    ("zh", "北京是中华人民共和国的首都，也是政治和文化中心。"),
    ("ja", "東京都の知事は新しい計画を発表した。"),
    ("eu", "Bilboko Guggenheim museoa Frank Gehry arkitektoak diseinatu zuen."),
    ("de", "Die Bundesregierung in Berlin plant eine neue Steuerreform."),
    ("ar", "زار الرئيس المصري القاهرة والتقى بوزير الخارجية."),
    ("ru", "Москва является столицей Российской Федерации."),
]
FP32_MAX_ABS = 1e-4
INT8_MIN_COS = 0.99


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _feeds(tok: Any, texts: list[str], names: set[str], max_length: int) -> dict[str, np.ndarray]:
    encs = [tok.encode(t) for t in texts]
    width = min(max(len(e.ids) for e in encs), max_length)
    pad = tok.token_to_id("<pad>")
    pad = 0 if pad is None else pad
    ids = np.full((len(encs), width), pad, np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        n = min(len(e.ids), width)
        ids[i, :n] = e.ids[:n]
        mask[i, :n] = 1
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {k: v for k, v in feed.items() if k in names}


def _mean_pool(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def validate(
    model_dir: Path,
    onnx_fp32: Path,
    onnx_int8: Path | None,
    tokenizer_json: Path,
    *,
    prefix: str = "",
    max_length: int = 128,
    reference: Any = None,
) -> dict[str, float]:
    """Compare ONNX fp32 (and int8) with the PyTorch model on the probe set."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    torch = require("torch")
    tok = Tokenizer.from_file(str(tokenizer_json))
    texts = [prefix + t for _, t in PROBES]
    if reference is None:
        transformers = require("transformers")
        reference = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    sess32 = ort.InferenceSession(str(onnx_fp32), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess32.get_inputs()}
    feed = _feeds(tok, texts, names | {"attention_mask"}, max_length)
    with torch.no_grad():
        ref = reference(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    feed = {k: v for k, v in feed.items() if k in names}
    mask = feed["attention_mask"] if "attention_mask" in feed else np.ones(ref.shape[:2], np.int64)
    out32 = sess32.run(None, feed)[0]
    if out32.shape != ref.shape:
        raise ExportError(f"ONNX output shape {out32.shape} differs from PyTorch {ref.shape}.")
    m = mask[..., None].astype(bool)
    report = {"fp32_max_abs_diff": float(np.abs(np.where(m, out32 - ref, 0)).max())}
    pooled_ref = _mean_pool(ref, mask)
    if onnx_int8 is not None:
        sess8 = ort.InferenceSession(str(onnx_int8), providers=["CPUExecutionProvider"])
        out8 = sess8.run(None, feed)[0]
        cos = (_mean_pool(out8, mask) * pooled_ref).sum(1)
        report["int8_pooled_cos_min"] = float(cos.min())
        report["int8_pooled_cos_mean"] = float(cos.mean())
    return report


def check_report(report: dict[str, float]) -> None:
    if not report["fp32_max_abs_diff"] <= FP32_MAX_ABS:
        raise ExportError(
            f"ONNX fp32 output differs from PyTorch: max abs diff {report['fp32_max_abs_diff']:.3g} "
            f"> {FP32_MAX_ABS}. The export is wrong; nothing was written."
        )
    if "int8_pooled_cos_min" in report and not report["int8_pooled_cos_min"] >= INT8_MIN_COS:
        raise ExportError(
            f"int8 model drifts from PyTorch: pooled cosine {report['int8_pooled_cos_min']:.4f} "
            f"< {INT8_MIN_COS}. Use --quantize none or check the model; nothing was written."
        )


def quantize_int8(src: Path, dst: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel signed int8 incl. the embedding Gather: on mE5-small per-tensor gave a
    # pooled cosine of 0.971 (fails the 0.99 gate), per-channel 0.994, both ~113 MiB.
    ops = ["MatMul", "Gemm", "Gather"]
    settings = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": False,
        "op_types": ops,
    }
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False, op_types_to_quantize=ops
    )
    # per-row activation scales: a text's vector must not depend on its batch neighbours
    import onnx

    model = onnx.load(str(dst))
    per_row_activations(model)
    onnx.save(model, str(dst))
    settings["activations"] = ACTIVATIONS
    return settings


def export_encoder(
    model_dir: Path,
    out: Path,
    *,
    quantize: str = "qint8",
    opset: int = 17,
    max_length: int = 256,
    pooling: str = "mention",
    query_prefix: str = "",
    passage_prefix: str = "",
    mention_weight: float = 0.5,
    check: bool = True,
    prune_vocab: list[str] | None = None,
    prune_words: int = 30000,
    max_vocab: int | None = None,
    keep_top: int = 0,
) -> dict[str, Any]:
    """Export, quantize, validate and write a bundle encoder directory at ``out``.

    ``prune_vocab`` (text files and/or comma-separated language codes) first prunes the
    vocabulary (see :mod:`xned.export.encoder.prune`); the pruned checkpoint is what gets exported and
    validated.
    """
    model_dir, out = Path(model_dir), Path(out)
    _check_arguments(model_dir, out, quantize, pooling)
    tok_json = model_dir / "tokenizer.json"
    _offline()
    optimum_onnx = require("optimum.exporters.onnx")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xned-export-") as tmpd:
        tmp = Path(tmpd)
        pruning: dict[str, Any] | None = None
        if prune_vocab:
            pruning = prune_checkpoint(
                model_dir,
                tmp / "pruned",
                prune_vocab,
                words_per_lang=prune_words,
                max_vocab=max_vocab,
                keep_top=keep_top,
            )
            model_dir = tmp / "pruned"
            tok_json = model_dir / "tokenizer.json"
        optimum_onnx.main_export(
            str(model_dir),
            output=str(tmp / "fp32"),
            task="feature-extraction",
            opset=opset,
            do_validation=False,
            local_files_only=True,
            library_name="transformers",
        )
        fp32 = tmp / "fp32" / "model.onnx"
        int8 = None
        qsettings: dict[str, Any] = {"method": "none"}
        if quantize == "qint8":
            int8 = tmp / "model.int8.onnx"
            qsettings = quantize_int8(fp32, int8)
        report = validate(model_dir, fp32, int8, tok_json, prefix=query_prefix, max_length=max_length)
        if check:
            check_report(report)
        settings = {
            "max_length": max_length,
            "pooling": pooling,
            "mention_weight": mention_weight,
            "query_prefix": query_prefix,
            "passage_prefix": passage_prefix,
            "opset": opset,
        }
        config = _write_encoder_dir(out, model_dir, int8 or fp32, settings, qsettings, report, pruning)
    config["seconds"] = round(time.perf_counter() - t0, 1)
    return config


def _check_arguments(model_dir: Path, out: Path, quantize: str, pooling: str) -> None:
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir} is not a Hugging Face model directory (no config.json).")
    if out.resolve() == model_dir.resolve():
        raise InputError(f"--out {out} is the input model directory; choose another directory.")
    check_replaceable_dir(out, "config.json", "encoder")
    if quantize not in ("qint8", "none"):
        raise InputError(f"--quantize {quantize!r}: choose qint8 or none.")
    if pooling not in ("mention", "mean", "cls"):
        raise InputError(f"--pooling {pooling!r}: choose mention, mean or cls.")
    if not (model_dir / "tokenizer.json").is_file():
        raise InputError(f"{model_dir} has no tokenizer.json (a fast tokenizer file is required).")


def _write_encoder_dir(
    out: Path,
    model_dir: Path,
    model: Path,
    settings: dict[str, Any],
    qsettings: dict[str, Any],
    report: dict[str, Any],
    pruning: dict[str, Any] | None,
) -> dict[str, Any]:
    """The bundle encoder directory ``out`` (staged beside it, then swapped in): the ONNX
    ``model``, the checkpoint's tokenizer (and its SentencePiece form), NOTICE and
    provenance, and ``config.json`` with the run-time ``settings``, the quantization and the
    validation report. Returns the config."""
    stage = out.with_name(out.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    shutil.copy(model, stage / "model.onnx")
    shutil.copy(model_dir / "tokenizer.json", stage / "tokenizer.json")
    for extra in ("NOTICE", "xned_provenance.json"):
        if (model_dir / extra).exists():
            shutil.copy(model_dir / extra, stage / extra)
    hf_cfg = json.loads((model_dir / "config.json").read_text())
    (stage / "quantization.json").write_text(json.dumps(qsettings, indent=2) + "\n")
    source: dict[str, Any] = {"model_dir": model_dir.name, "model_type": hf_cfg.get("model_type")}
    if (model_dir / "xned_provenance.json").exists():
        source.update(json.loads((model_dir / "xned_provenance.json").read_text()))
    config = {
        "model": "model.onnx",
        "tokenizer": "tokenizer.json",
        **{k: settings[k] for k in ("max_length", "pooling", "mention_weight", "query_prefix", "passage_prefix")},
        "dim": hf_cfg.get("hidden_size"),
        "opset": settings["opset"],
        "quantization": qsettings,
        "validation": report,
        "source": source,
    }
    if pruning is not None:
        config["vocab_pruning"] = pruning
    (stage / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")

    config["pieces"] = "tokenizer.model" if write_pieces(stage) else None  # the lighter tokenizer
    replace_dir(stage, out)
    return config
