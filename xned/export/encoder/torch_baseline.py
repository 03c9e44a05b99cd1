""" "The PyTorch way", the reference ``xned bench --torch-model`` compares against: the same
candidates and scoring, but every mention with candidates encoded by the same encoder in
``transformers`` fp32, each in a 256-token window centred on it (windows on a grid of
quarter-window steps, shared by mentions that pick the same one), batches of 32 windows.
That is how a straightforward PyTorch pipeline (and xned before chunked encoding) does it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.chunks import token_spans
from xned.engine.encoder import Encoder, normalize_rows
from xned.engine.linker import Linker

WINDOW = 256
BATCH = 32


class TorchEncoder(Encoder):
    """An ``Encoder`` whose forward pass is the ``transformers`` model and whose context is
    one centred 256-token window per mention."""

    def __init__(self, base: Encoder, hf_dir: Path, threads: int):
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        super().__init__(base.root)
        torch.set_num_threads(threads)
        self._torch = torch
        self._model = AutoModel.from_pretrained(str(hf_dir), local_files_only=True).eval()
        tok = Tokenizer.from_file(str(Path(hf_dir) / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        specials = tok.encode("", add_special_tokens=True).ids
        self._cls, self._sep = specials[:1], specials[1:]
        self._pad_id = tok.token_to_id("<pad>") or 0
        q = self.config["query_prefix"]
        self._prefix = {"query": tok.encode(q, add_special_tokens=False).ids if q else [], "passage": []}
        self._tokenizer = tok

    def _run(self, seqs: list[list[int]], reduce: Any = None) -> list[Any]:
        torch = self._torch
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[Any] = [None] * len(seqs)
        with torch.inference_mode():
            for b in range(0, len(order), BATCH):
                idx = order[b : b + BATCH]
                width = max(len(seqs[i]) for i in idx)
                ids = torch.full((len(idx), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    ids[r, : len(seqs[i])] = torch.tensor(seqs[i])
                    mask[r, : len(seqs[i])] = 1
                hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
                for r, i in enumerate(idx):
                    h = hidden[r, : len(seqs[i])]
                    out[i] = h if reduce is None else reduce(i, h)
        return out

    def embed_mentions(self, texts: Any, spans: Any) -> list[np.ndarray]:
        room = WINDOW - len(self._cls) - len(self._sep) - len(self._prefix["query"])
        step = max(1, room // 4)
        windows: dict[tuple[int, int, int], int] = {}
        seqs: list[list[int]] = []
        assign: list[list[tuple[int, int, int]]] = []
        for d, (enc, doc_spans) in enumerate(
            zip(self._tok.encode_batch(list(texts), add_special_tokens=False), spans, strict=True)
        ):
            n = len(enc.ids)
            per = []
            for a, b in token_spans(enc.offsets, doc_spans):
                if n <= room:
                    w0, w1 = 0, n
                else:
                    centre = (a + b) // 2
                    w0 = min(max(0, round((centre - room // 2) / step) * step), n - room)
                    w1 = w0 + room
                    if a < w0 or b > w1:
                        w0, w1 = max(0, a - 1), min(n, max(0, a - 1) + room)
                    b = min(b, w1)
                key = (d, w0, w1)
                if key not in windows:
                    windows[key] = len(seqs)
                    seqs.append(self._cls + self._prefix["query"] + list(enc.ids[w0:w1]) + self._sep)
                per.append((windows[key], a - w0, max(a + 1, b) - w0))
            assign.append(per)
        hidden = self._run(seqs) if seqs else []
        lead = len(self._cls) + len(self._prefix["query"])
        out = []
        for per in assign:
            vecs = []
            for wid, a, b in per:
                h = hidden[wid]
                ctx = h.mean(axis=0)
                men = h[lead + a : lead + b].mean(axis=0)
                vecs.append(self.mention_weight * normalize_rows(men) + (1 - self.mention_weight) * normalize_rows(ctx))
            out.append(normalize_rows(np.stack(vecs).astype(np.float32)) if vecs else np.zeros((0, 384), np.float32))
        return out


def torch_way(
    bundle: Path | None,
    hf_dir: Path,
    docs: list[dict[str, Any]],
    given_spans: bool,
    *,
    repeat: int = 1,
    threads: int = 2,
) -> dict[str, Any]:
    """Mentions/s of the PyTorch way on ``docs`` (median of ``repeat``, model loaded)."""
    linker = Linker.load(bundle, use_corrections=False)
    if linker.encoder is None:
        raise ValueError(f"bundle {linker.root} has no encoder to compare with")
    linker.encoder = TorchEncoder(linker.encoder, Path(hf_dir), threads)
    linker._needs_context = lambda *a: True  # type: ignore[method-assign]  # every mention with candidates
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = sum(len(r.links) for r in linker.link_batch(docs, given_spans=given_spans))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"torch_way_mentions_per_s": round(n / med, 1), "torch_way_s": round(med, 2)}
