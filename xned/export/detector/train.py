"""``xned detector train``: fit the mention detector head (``xned.engine.tagger``) on
source-language annotated mentions, with the bundle's own encoder.

Every training document goes through the encoder once, in the chunks the linker uses at run
time (``Encoder.encode_documents``); each piece gets a BIO label from the annotated spans
(every mention, linked or NIL; the outermost of nested ones). The head, a two-layer
perceptron on the frozen token states, is fit with PyTorch (the ``[export]`` extra) and
written as plain ``.npy`` arrays: the linker needs numpy only. Trained on one language, it
applies to every language the encoder knows (zero-shot, like the word experts).
"""

from __future__ import annotations

import bisect
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine import layout as L
from xned.engine.encoder import Encoder
from xned.engine.tagger import LABELS, MIN_SCORE, RULE_MIN_SCORE
from xned.errors import InputError
from xned.export.manifest import update_manifest
from xned.export.training_docs import TrainDoc, read_training
from xned.fsutil import atomic_write_text, replace_dir
from xned.logs import Log, silent

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder


TAG_O, TAG_B, TAG_I = 0, 1, 2
IGNORE = -1


def bio_labels(text: str, offsets: np.ndarray, spans: Sequence[tuple[int, int]], partial: bool = False) -> np.ndarray:
    """One label per piece (``offsets`` ``[n, 2]``, characters of ``text``): B for the first
    piece of a mention, I for its other pieces, O outside, IGNORE for pieces that hold only
    white space. Nested mentions: the outermost wins; overlapping ones: the first.

    ``partial`` (Wikipedia links: a page links some of its names, and concepts too): a span
    without an upper-case letter (a linked concept, "physics") and a piece outside the spans
    that starts with an upper-case letter (maybe a name nobody linked) are IGNORE; only
    lower-case text outside the links is taught as O."""
    keep: list[tuple[int, int]] = []
    unsure: list[tuple[int, int]] = []
    for s, e in sorted(set(spans), key=lambda x: (x[0], -x[1])):
        if e > s and not (keep and s < keep[-1][1]):
            if partial and not any(ch.isupper() for ch in text[s:e]):
                unsure.append((s, e))
                continue
            keep.append((s, e))
    starts = [s for s, _ in keep]
    y = np.full(len(offsets), TAG_O, np.int8)
    prev = -1
    for t, (s, e) in enumerate(offsets.tolist()):
        while s < e and text[s].isspace():
            s += 1
        if s >= e:
            y[t] = IGNORE
            continue
        k = bisect.bisect_right(starts, s) - 1
        if k >= 0 and s < keep[k][1]:
            y[t] = TAG_I if k == prev else TAG_B
            prev = k
            continue
        prev = -1
        if partial and (text[s].isupper() or any(a <= s < b for a, b in unsure)):
            y[t] = IGNORE
    return y


def collect(
    encoder: Encoder, docs: Iterable[TrainDoc], *, batch_docs: int = 16, log: Log = silent
) -> tuple[np.ndarray, np.ndarray, int]:
    """Token states (float16) and labels of every piece of ``docs``, and the document count."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    n_docs = 0
    batch: list[TrainDoc] = []

    def flush() -> None:
        texts = [d.text for d in batch]
        spans = [[(s, e) for s, e, _ in d.spans] for d in batch]
        partial = [d.partial for d in batch]

        def visit(d: int, offsets: np.ndarray, h: np.ndarray, lead: int) -> None:
            xs.append(h[lead : lead + len(offsets)].astype(np.float16))
            ys.append(bio_labels(texts[d], offsets, spans[d], partial[d]))

        encoder.encode_documents(texts, spans, visit)
        batch.clear()

    t0 = time.perf_counter()
    for doc in docs:
        if not doc.text.strip():
            continue
        batch.append(doc)
        n_docs += 1
        if len(batch) >= batch_docs:
            flush()
            if n_docs % (batch_docs * 20) == 0:
                pieces = sum(len(y) for y in ys)
                log(f"detector: {n_docs} docs, {pieces} pieces encoded ({pieces / (time.perf_counter() - t0):.0f}/s)")
    if batch:
        flush()
    if not xs:
        return np.zeros((0, encoder.dim), np.float16), np.zeros(0, np.int8), n_docs
    return np.concatenate(xs), np.concatenate(ys), n_docs


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    *,
    hidden: int = 256,
    epochs: int = 4,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    dropout: float = 0.1,
    seed: int = 0,
    log: Log = silent,
) -> dict[str, np.ndarray]:
    """Fit ``relu(x W1 + b1) W2 + b2`` by cross-entropy (AdamW, minibatches of 256); the
    standardization of ``x`` is folded into ``W1``/``b1``. Returns float32 arrays."""
    import torch

    keep = y >= 0
    if not keep.any():
        raise InputError("No labelled pieces to train the detector on (the training documents are empty).")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x[keep].astype(np.float32))
    yt = torch.from_numpy(y[keep].astype(np.int64))
    mu = xt.mean(0)
    sd = xt.std(0) + 1e-6
    xt = (xt - mu) / sd
    lin1 = torch.nn.Linear(xt.shape[1], hidden)
    lin2 = torch.nn.Linear(hidden, len(LABELS))
    net = torch.nn.Sequential(torch.nn.Dropout(dropout), lin1, torch.nn.ReLU(), torch.nn.Dropout(dropout), lin2)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(xt)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, 256):
            idx = perm[i : i + 256]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        log(f"detector: epoch {epoch + 1}/{epochs}, loss {total / n:.4f}")
    with torch.no_grad():
        w1 = (lin1.weight.T / sd[:, None]).numpy()  # (x - mu) / sd @ W = x @ (W / sd) - (mu / sd) @ W
        b1 = (lin1.bias - (mu / sd) @ lin1.weight.T).numpy()
        return {
            "w1": w1.astype(np.float32),
            "b1": b1.astype(np.float32),
            "w2": lin2.weight.T.numpy().astype(np.float32),
            "b2": lin2.bias.numpy().astype(np.float32),
        }


def write_detector(out: Path, weights: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``detector/`` next to the old one and swap it in (never half written)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = {"w1": L.DetectorDir.W1, "b1": L.DetectorDir.B1, "w2": L.DetectorDir.W2, "b2": L.DetectorDir.B2}
    for key, name in names.items():
        with open(tmp / name, "wb") as f:
            np.save(f, weights[key], allow_pickle=False)
    atomic_write_text(tmp / L.DetectorDir.META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    replace_dir(tmp, out)


def train_detector(
    bundle: Path,
    files: Sequence[Path],
    *,
    source_langs: Sequence[str] = ("en",),
    hidden: int = 256,
    epochs: int = 4,
    min_score: float = MIN_SCORE,
    rule_min_score: float = RULE_MIN_SCORE,
    max_docs: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    log: Log = silent,
) -> dict[str, Any]:
    """Train ``bundle/detector/`` on the mentions of ``files`` in ``source_langs``."""

    t0 = time.perf_counter()
    enc_dir = Path(bundle) / L.ENCODER
    if not (enc_dir / L.ENCODER_CONFIG).is_file():
        raise InputError(
            f"Bundle {bundle} has no encoder ({enc_dir / L.ENCODER_CONFIG}); the detector reads its states."
        )
    encoder = Encoder(enc_dir, threads=threads)
    src = set(source_langs)
    docs = read_training(files, source_langs=src, max_docs=max_docs)
    x, y, n_docs = collect(encoder, docs, log=log)
    if not n_docs:
        raise InputError(
            f"No training documents in language(s) {', '.join(sorted(src))} among {len(files)} file(s); "
            f"check --source-lang (a file's language is its 'lang' field or the code before .jsonl)."
        )
    counts = {lab: int((y == i).sum()) for i, lab in enumerate(LABELS)}
    log(f"detector: {n_docs} docs, {len(y)} pieces ({counts})")
    weights = fit_head(x, y, hidden=hidden, epochs=epochs, seed=seed, log=log)
    meta = {
        "labels": list(LABELS),
        "source_langs": sorted(src),
        "training_files": [Path(f).name for f in files],
        "docs": n_docs,
        "pieces": counts,
        "hidden": hidden,
        "epochs": epochs,
        "seed": seed,
        "min_score": min_score,
        "rule_min_score": rule_min_score,
        "method": "BIO softmax, 2-layer perceptron (ReLU) on frozen int8-encoder token states",
    }
    write_detector(Path(bundle) / L.DETECTOR, weights, meta)
    update_manifest(Path(bundle), provenance={"detector": meta})
    return {**meta, "seconds": round(time.perf_counter() - t0, 1)}
