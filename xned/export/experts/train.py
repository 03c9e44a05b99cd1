"""Train word experts (Barrena, Soroa & Agirre 2021): one small softmax classifier per
mention string, over that string's candidate entities, fed the mention-in-context
embedding of the bundle's multilingual encoder and trained on **source-language** contexts
only. Because the encoder is multilingual, an expert trained on English contexts of
"Georgia (country)" and "Georgia (U.S. state)" also scores the Spanish or Japanese
mention of either.

Training data:

* contexts: every annotated source-language mention of a candidate entity, whatever its
  surface string (canonical JSONL, or Wikipedia XML dumps where anchors are the labels);
  at most ``max_per_entity`` per entity, sampled reproducibly;
* pseudo-contexts: the entity's own label in a sentence built from its description
  (``"<label>, <description>."``), one per candidate, so classes with few or no examples
  still have a point in the same (query) embedding space.

The models and their fit: ``experts.fit``; the training documents: ``export.training_docs``.

Calibration (``holdout > 0``): documents are split by a hash of their id; experts trained
on the rest score the held-out documents, and the fusion weights of
``xned/engine/scoring.py`` are fit on them (``xned.export.experts.calibrate``), so the weight the
fusion gives to experts is measured on contexts the experts never saw. The experts shipped
are then retrained on all documents.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.experts import Experts
from xned.engine.linker import Linker
from xned.errors import InputError
from xned.export.experts.calibrate import calibrate_on
from xned.export.experts.fit import TrainedExperts, train_models
from xned.export.manifest import update_manifest
from xned.export.training_docs import UNRESOLVED, TrainDoc, in_holdout, read_training
from xned.fsutil import replace_dir
from xned.logs import Log, silent
from xned.titles import load_titles

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder
    from xned.engine.linker import Linker


# -- training contexts ----------------------------------------------------------------------


@dataclass
class Examples:
    """Mention-in-context vectors of training mentions (capped per entity). ``held`` marks
    vectors from held-out documents; ``seen`` / ``seen_kept`` count every mention of an
    entity (all documents / without the held-out ones), for the experts' prior."""

    ents: list[int] = field(default_factory=list)
    vecs: list[np.ndarray] = field(default_factory=list)
    held: list[bool] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen_kept: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    docs: int = 0
    mentions: int = 0
    unknown: int = 0

    def arrays(self, *, without_held: bool = False) -> tuple[np.ndarray, np.ndarray]:
        dim = self.vecs[0].shape[-1] if self.vecs else 0
        keep = [i for i, h in enumerate(self.held) if not (without_held and h)]
        x = np.stack([self.vecs[i] for i in keep]).astype(np.float32) if keep else np.zeros((0, dim), np.float32)
        return np.asarray([self.ents[i] for i in keep], np.int64), x


def _encoder(linker: Linker) -> Encoder:
    if linker.encoder is None:
        raise InputError(f"Bundle {linker.root} has no encoder; experts need mention-in-context vectors.")
    return linker.encoder


def collect_examples(
    linker: Linker,
    docs: Iterable[TrainDoc],
    *,
    is_held: Callable[[str], bool] = lambda _doc_id: False,
    max_per_entity: int = 64,
    seed: int = 0,
    batch_docs: int = 16,
    log: Log = silent,
) -> Examples:
    """Encode every labelled mention whose QID is in the KB. Per entity, a reservoir of at
    most ``max_per_entity`` vectors is kept (reproducible for a seed), so memory is bounded
    by ``entities x max_per_entity x dim`` whatever the corpus size."""
    rng = np.random.default_rng(seed)
    ex = Examples()
    slots: dict[int, list[int]] = defaultdict(list)  # entity -> positions in ex.vecs
    chunk: list[tuple[TrainDoc, list[tuple[int, int, int]]]] = []
    t0 = time.perf_counter()

    def flush() -> None:
        texts = [d.text for d, _ in chunk]
        spans = [[(s, e) for s, e, _ in sp] for _, sp in chunk]
        for (doc, sp), vecs in zip(chunk, _encoder(linker).embed_mentions(texts, spans), strict=True):
            held = is_held(doc.id)
            for (_, _, ent), v in zip(sp, vecs, strict=True):
                n = ex.seen[ent]
                ex.seen[ent] = n + 1
                if not held:
                    ex.seen_kept[ent] += 1
                mine = slots[ent]
                v16 = v.astype(np.float16)
                if len(mine) < max_per_entity:
                    mine.append(len(ex.vecs))
                    ex.vecs.append(v16)
                    ex.ents.append(ent)
                    ex.held.append(held)
                else:
                    j = int(rng.integers(0, n + 1))
                    if j < max_per_entity:
                        ex.vecs[mine[j]] = v16
                        ex.held[mine[j]] = held
        chunk.clear()

    for doc in docs:
        ex.docs += 1
        sp = []
        for s, e, qid in doc.spans:
            if qid is None or qid == UNRESOLVED:
                continue
            ent = linker.kb.index(qid)
            if ent < 0:
                ex.unknown += 1
                continue
            if 0 <= s < e <= len(doc.text):
                sp.append((s, e, ent))
        ex.mentions += len(sp)
        if sp:
            chunk.append((doc, sp))
        if len(chunk) >= batch_docs:
            flush()
            if ex.docs % (batch_docs * 16) == 0:
                log(f"experts: {ex.docs} docs, {ex.mentions} mentions encoded ({time.perf_counter() - t0:.0f} s)")
    if chunk:
        flush()
    return ex


def pseudo_contexts(linker: Linker, ents: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """One query-side vector per entity: its label in "<label>, <description>." with the
    label as the mention span (the same space as real mention-in-context vectors)."""
    out: list[np.ndarray] = []
    for i in range(0, len(ents), batch):
        texts: list[str] = []
        spans: list[list[tuple[int, int]]] = []
        for e in ents[i : i + batch].tolist():
            label, desc = linker.kb.record(int(e))
            label = label or linker.kb.qid(int(e))
            texts.append(f"{label}, {desc}." if desc else f"{label}.")
            spans.append([(0, len(label))])
        out.extend(v[0] for v in _encoder(linker).embed_mentions(texts, spans))
    dim = out[0].shape[-1] if out else 0
    return np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


# -- which experts --------------------------------------------------------------------------


# -- the classifier -------------------------------------------------------------------------


# -- writing --------------------------------------------------------------------------------


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def write_experts(out: Path, te: TrainedExperts, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the ``experts/`` layout of ``xned/engine/experts.py`` atomically (int8 rows
    with a float32 scale each)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    keys = sorted(te.keys)
    trie = marisa_trie.Trie([k for k, _ in keys])
    key_model = np.full(len(trie), -1, np.int32)
    for k, m in keys:
        key_model[trie[k]] = m
    w = np.concatenate(te.weights) if te.weights else np.zeros((0, 0), np.float32)
    scales = (np.abs(w).max(axis=1) / 127.0).astype(np.float32) if len(w) else np.zeros(0, np.float32)
    q = np.round(w / np.maximum(scales, 1e-12)[:, None]).clip(-127, 127).astype(np.int8) if len(w) else w
    sizes = [len(c) for c in te.classes]
    trie.save(str(tmp / L.ExpertsDir.KEYS))
    _save_npy(tmp / L.ExpertsDir.KEY_MODEL, key_model)
    _save_npy(tmp / L.ExpertsDir.MODEL_OFFSETS, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    _save_npy(tmp / L.ExpertsDir.CLASSES, np.concatenate(te.classes) if te.classes else np.zeros(0, np.int32))
    _save_npy(tmp / L.ExpertsDir.WEIGHTS, q.astype(np.int8))
    _save_npy(tmp / L.ExpertsDir.SCALES, scales)
    bias = np.concatenate(te.bias).astype(np.float32) if te.bias else np.zeros(0, np.float32)
    _save_npy(tmp / L.ExpertsDir.BIAS, bias)
    if te.hubness is not None:
        _save_npy(tmp / L.ExpertsDir.HUBNESS, te.hubness.astype(np.float16))
    langs = sorted({k.split(L.FIELD_SEP, 1)[0] for k, _ in keys})
    full = {**meta, "dim": int(w.shape[1]) if w.ndim == 2 and len(w) else 0, "experts": len(sizes)}
    full["languages"] = langs
    full["stats"] = te.stats
    # the experts' own files; hubness.npy is per KB entity, not per expert
    nbytes = sum(p.stat().st_size for p in tmp.iterdir() if p.name != L.ExpertsDir.HUBNESS)
    full["stats"]["bytes"] = nbytes
    full["stats"]["bytes_per_expert"] = round(nbytes / max(len(sizes), 1), 1)
    (tmp / L.ExpertsDir.META).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    replace_dir(tmp, out)
    return full


# -- the command ----------------------------------------------------------------------------


def train_experts(
    bundle: Path,
    files: list[Path],
    *,
    titles: Path | None = None,
    source_langs: list[str] | None = None,
    seed: int = 0,
    holdout: float = 0.2,
    max_per_entity: int = 64,
    max_docs: int | None = None,
    threads: int | None = None,
    absent: float = 0.0,
    log: Log = silent,
) -> dict[str, Any]:
    """Train the bundle's experts on ``files`` (source-language contexts only) and, with
    ``holdout > 0``, calibrate the fusion on held-out documents (``absent``: also on that
    fraction of them as a bundle without their gold entity sees them). Returns a summary."""

    bundle = Path(bundle)
    src = set(source_langs or ["en"])
    title_map = load_titles(titles)
    linker = Linker.load(bundle, threads=threads, use_corrections=False)
    if linker.encoder is None:
        raise InputError(f"Bundle {bundle} has no encoder; experts need mention-in-context vectors.")
    linker.experts = None  # train against the KB alone
    t0 = time.perf_counter()
    # Documents are streamed through the encoder; only the held-out ones are kept, for calibration.
    held: list[TrainDoc] = []

    def is_held(doc_id: str) -> bool:
        return in_holdout(doc_id, holdout, seed)

    def keep_held(docs: Iterable[TrainDoc]) -> Iterator[TrainDoc]:
        for d in docs:
            if is_held(d.id):
                held.append(d)
            yield d

    docs = keep_held(read_training(files, titles=title_map, source_langs=src, max_docs=max_docs))
    ex = collect_examples(linker, docs, is_held=is_held, max_per_entity=max_per_entity, seed=seed, log=log)
    if not ex.docs:
        raise InputError(
            f"No training documents in language(s) {', '.join(sorted(src))} among {len(files)} file(s); "
            f"check --source-lang (a file's language is its 'lang' field or the code before .jsonl)."
        )
    log(f"experts: {ex.docs} source-language docs ({len(held)} held out for calibration)")
    ents, x = ex.arrays()
    if not len(ents):
        raise InputError(
            "None of the training mentions names an entity of this KB (check --titles for title-only gold)."
        )
    log(f"experts: {len(ents)} training vectors of {len(set(ents.tolist()))} entities ({ex.unknown} not in the KB)")
    pseudo_cache: dict[int, np.ndarray] = {}

    def pseudo(es: np.ndarray) -> np.ndarray:
        todo = np.array([e for e in es.tolist() if e not in pseudo_cache], np.int64)
        if len(todo):
            for e, v in zip(todo.tolist(), pseudo_contexts(linker, todo), strict=True):
                pseudo_cache[e] = v
        return np.stack([pseudo_cache[e] for e in es.tolist()])

    meta = {
        "source_langs": sorted(src),
        "seed": seed,
        "max_per_entity": max_per_entity,
        "training_files": [Path(f).name for f in files],
        "method": "class-balanced softmax per candidate set + log source-language frequency prior",
    }
    summary: dict[str, Any] = {"docs": ex.docs, "mentions": ex.mentions, "not_in_kb": ex.unknown}
    experts_dir = bundle / L.EXPERTS
    if held:
        e_tr, x_tr = ex.arrays(without_held=True)
        te = train_models(linker.kb, e_tr, x_tr, ex.seen_kept, pseudo, log=log)
        summary["calibration"] = _calibrate_held_out(linker, te, meta, held, seed=seed, absent=absent, log=log)
    te = train_models(linker.kb, ents, x, ex.seen, pseudo, log=log)
    info = write_experts(experts_dir, te, meta)
    summary["experts"] = info["stats"]
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    update_manifest(bundle, provenance={"experts": {**meta, **info["stats"]}})
    return summary


def _calibrate_held_out(
    linker: Linker,
    te: TrainedExperts,
    meta: dict[str, Any],
    held: list[TrainDoc],
    *,
    seed: int,
    absent: float,
    log: Log,
) -> dict[str, Any]:
    """Experts trained without the held-out documents score them, and the fusion
    (``scoring.json``) is fit on those scores: the weight the fusion gives to experts is
    measured on contexts the experts never saw."""

    tmp = linker.root / "experts.calibration"
    write_experts(tmp, te, meta)
    try:
        linker.experts = Experts(tmp)
        return calibrate_on(linker, held, linker.root / L.SCORING, seed=seed, absent=absent, log=log)
    finally:
        linker.experts = None
        shutil.rmtree(tmp, ignore_errors=True)
