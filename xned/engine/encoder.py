"""Tokenizer + ONNX Runtime encoder: one session per process, mentions pooled from
shared context windows.

``encoder/config.json``::

    {"model": "model.onnx", "tokenizer": "tokenizer.json", "max_length": 256,
     "pooling": "mention" | "mean" | "cls", "mention_weight": 0.5,
     "query_prefix": "query: ", "passage_prefix": "passage: ", "dim": 384}

Context encoding: a document is tokenized once (character offsets kept). Documents that
fit go through the encoder as one window; longer ones are cut into windows of
``max_length`` tokens placed on a grid of quarter-window steps, each mention using the
window where it is most central, so nearby mentions share one encoder pass. Windows from
all documents of a batch are sorted by length and run in batches; results are mapped
back to their mentions.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.bundle import REBUILD_HINT
from xned.errors import BundleError

DEFAULT_CONFIG: dict[str, Any] = {
    "model": "model.onnx",
    "tokenizer": "tokenizer.json",
    "max_length": 256,
    "pooling": "mention",
    "mention_weight": 0.5,
    "query_prefix": "",
    "passage_prefix": "",
}


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """Requested execution providers that this onnxruntime has, CPU last; warn for the rest."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not requested:
        return ["CPUExecutionProvider"]
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        warnings.warn(
            f"Execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"(has: {', '.join(available)}); falling back to CPUExecutionProvider.",
            RuntimeWarning,
            stacklevel=3,
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@dataclass
class Window:
    doc: int
    tok_start: int
    tok_end: int


class Encoder:
    """Lazily creates its tokenizer and ``InferenceSession`` on first use."""

    def __init__(
        self,
        root: Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int = 32,
    ):
        self.root = Path(root)
        cfg_path = self.root / "config.json"
        if not cfg_path.is_file():
            raise BundleError(f"Encoder config {cfg_path} is missing; {REBUILD_HINT}.")
        try:
            user = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{cfg_path} is corrupted ({exc}); {REBUILD_HINT}.") from None
        self.config = {**DEFAULT_CONFIG, **user}
        self.max_length = int(self.config["max_length"])
        self.pooling = str(self.config["pooling"])
        if self.pooling not in ("mention", "mean", "cls"):
            raise BundleError(f"{cfg_path}: unknown pooling {self.pooling!r} (mention, mean, cls).")
        self.mention_weight = float(self.config["mention_weight"])
        self.providers = providers
        self.threads = threads
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()

    # -- lazy resources ---------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            path = self.root / self.config["tokenizer"]
            if not path.is_file():
                raise BundleError(f"Tokenizer {path} is missing; {REBUILD_HINT}.")
            try:
                tok = Tokenizer.from_file(str(path))
            except Exception as exc:
                raise BundleError(f"Tokenizer {path} is unreadable ({exc}); {REBUILD_HINT}.") from None
            tok.no_padding()
            tok.no_truncation()
            specials = tok.encode("", add_special_tokens=True).ids
            self._cls = specials[:1]
            self._sep = specials[1:] if len(specials) > 1 else []
            self._pad_id = tok.token_to_id("<pad>")
            if self._pad_id is None:
                self._pad_id = tok.token_to_id("[PAD]") or 0
            self._tokenizer = tok
            self._prefix = {
                "query": tok.encode(self.config["query_prefix"], add_special_tokens=False).ids
                if self.config["query_prefix"]
                else [],
                "passage": tok.encode(self.config["passage_prefix"], add_special_tokens=False).ids
                if self.config["passage_prefix"]
                else [],
            }
        return self._tokenizer

    @property
    def session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            path = self.root / self.config["model"]
            if not path.is_file():
                raise BundleError(f"Encoder model {path} is missing; {REBUILD_HINT}.")
            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = int(self.threads)
                opts.inter_op_num_threads = 1
                # Several single-threaded sessions share the cores: do not spin-wait.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                self._session = ort.InferenceSession(
                    str(path), sess_options=opts, providers=choose_providers(self.providers)
                )
            except Exception as exc:
                raise BundleError(f"Encoder model {path} cannot be loaded ({exc}); {REBUILD_HINT}.") from None
            self._inputs = {i.name for i in self._session.get_inputs()}
        return self._session

    @property
    def dim(self) -> int:
        out = self.session.get_outputs()[0].shape
        return int(out[-1]) if isinstance(out[-1], int) else int(self.config.get("dim", 0))

    # -- running ----------------------------------------------------------------------------
    def _run(self, seqs: list[list[int]]) -> list[np.ndarray]:
        """Hidden states ``[len(seq), H]`` for each id sequence (length-sorted batches)."""
        session = self.session
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[np.ndarray] = [np.zeros(0)] * len(seqs)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = seqs[i]
                mask[r, : len(seqs[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            feed = {k: v for k, v in feed.items() if k in self._inputs}
            hidden = session.run(None, feed)[0]
            for r, i in enumerate(idx):
                out[i] = hidden[r, : len(seqs[i])]
        return out

    def _wrap(self, body: list[int], kind: str) -> list[int]:
        return self._cls + self._prefix[kind] + body + self._sep

    def embed_texts(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Mean-pooled, L2-normalized embeddings of short texts (entity descriptions)."""
        tok = self.tokenizer
        room = self.max_length - len(self._cls) - len(self._sep) - len(self._prefix[kind])
        seqs = [self._wrap(e.ids[:room], kind) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
        if not seqs:
            return np.zeros((0, self.dim), np.float32)
        hidden = self._run(seqs)
        if self.pooling == "cls":
            pooled = np.stack([h[0] for h in hidden])
        else:
            pooled = np.stack([h.mean(axis=0) for h in hidden])
        return _normalize_rows(pooled.astype(np.float32))

    def embed_mentions(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[np.ndarray]:
        """For each document, an L2-normalized ``[n_mentions, H]`` array of mention-in-context
        embeddings. ``spans[d]`` are character spans into ``texts[d]``."""
        tok = self.tokenizer
        room = self.max_length - len(self._cls) - len(self._sep) - len(self._prefix["query"])
        step = max(1, room // 4)
        encs = tok.encode_batch(list(texts), add_special_tokens=False)
        windows: dict[tuple[int, int, int], int] = {}
        assign: list[list[tuple[int, int, int]]] = []  # per doc: (window id, tok_a, tok_b)
        seqs: list[list[int]] = []
        for d, (enc, doc_spans) in enumerate(zip(encs, spans, strict=True)):
            n = len(enc.ids)
            offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            starts, ends = offs[:, 0], offs[:, 1]
            per: list[tuple[int, int, int]] = []
            for s, e in doc_spans:
                a = int(np.searchsorted(ends, s, side="right"))
                b = int(np.searchsorted(starts, e, side="left"))
                if b <= a:  # span inside one token or between tokens
                    a = min(a, max(n - 1, 0))
                    b = min(a + 1, n)
                if n <= room:
                    w0, w1 = 0, n
                else:
                    centre = (a + b) // 2
                    w0 = min(max(0, round((centre - room // 2) / step) * step), max(0, n - room))
                    w1 = min(n, w0 + room)
                    if a < w0 or b > w1:  # mention longer than the grid allows
                        w0, w1 = max(0, a - 1), min(n, max(0, a - 1) + room)
                    b = min(b, w1)
                key = (d, w0, w1)
                if key not in windows:
                    windows[key] = len(seqs)
                    seqs.append(self._wrap(list(enc.ids[w0:w1]), "query"))
                per.append((windows[key], a - w0, b - w0))
            assign.append(per)
        hidden = self._run(seqs) if seqs else []
        lead = len(self._cls) + len(self._prefix["query"])
        results: list[np.ndarray] = []
        for per in assign:
            vecs = []
            for wid, a, b in per:
                h = hidden[wid]
                if self.pooling == "cls":
                    v = h[0]
                else:
                    ctx = h.mean(axis=0)
                    if self.pooling == "mean" or b <= a:
                        v = ctx
                    else:
                        men = h[lead + a : lead + b].mean(axis=0)
                        w = self.mention_weight
                        v = w * _normalize_rows(men) + (1 - w) * _normalize_rows(ctx)
                vecs.append(v)
            dim = hidden[0].shape[-1] if hidden else 0
            arr = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
            results.append(_normalize_rows(arr))
        return results
