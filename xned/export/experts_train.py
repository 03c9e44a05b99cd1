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

The model of a candidate set ``C`` is ``p(e | x) = softmax_e(w_e · x + b_e + log π_e)``:
``w_e, b_e`` are fit by class-balanced, L2-regularized multinomial logistic regression
(initialized at the class centroids), so they carry the context evidence only; ``π_e`` is
the entity's smoothed source-language frequency among the candidates, the expert's prior.
Aliases (in any language) whose candidate sets are equal share one model. Experts are
built only for aliases with two or more candidates of which at least one has a real
training context: elsewhere the linker falls back to similarity + prior.

Calibration (``holdout > 0``): documents are split by a hash of their id; experts trained
on the rest score the held-out documents, and the fusion weights of
``xned/engine/scoring.py`` are fit on them (``xned.export.calibrate``), so the weight the
fusion gives to experts is measured on contexts the experts never saw. The experts shipped
are then retrained on all documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import marisa_trie
import numpy as np

from xned.engine.experts import SEP
from xned.errors import InputError

Log = Callable[[str], None]

TEMPERATURE = 20.0  # scale of the centroid initialization (cosines of contexts sit in a narrow band)
L2 = 1e-3
STEPS = 150
LR = 0.5
ALPHA = 1.0  # add-alpha smoothing of the source-language frequency prior


UNRESOLVED = "?"  # gold given as a title that maps to no QID: neither NIL nor usable


def _noop(_: str) -> None:
    pass


def in_holdout(doc_id: str, fraction: float, seed: int = 0) -> bool:
    """Deterministic document split used for calibration (and by the evaluation protocol
    to keep held-out documents out of the KB's anchor counts)."""
    if fraction <= 0:
        return False
    h = hashlib.sha1(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


# -- training contexts ----------------------------------------------------------------------


@dataclass
class TrainDoc:
    id: str
    lang: str
    text: str
    spans: list[tuple[int, int, str | None]]  # (start, end, qid); None = NIL, UNRESOLVED = unknown gold


def read_training(
    files: Iterable[Path],
    *,
    titles: dict[str, str] | None = None,
    source_langs: set[str] | None = None,
    max_docs: int | None = None,
) -> Iterator[TrainDoc]:
    """Source-language training documents from canonical JSONL files or Wikipedia XML dumps
    (``*.xml``, ``*.xml.bz2``: anchors become labelled mentions; targets are mapped to QIDs
    through ``titles``)."""
    from xned.evaluate import read_jsonl

    titles = titles or {}
    n = 0
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Training file {path} not found.")
        name = path.name
        if name.endswith(".jsonl"):
            docs: Iterable[TrainDoc] = (
                TrainDoc(
                    d.id,
                    d.lang or _lang_from_name(name) or "",
                    d.text,
                    [(g.start, g.end, UNRESOLVED if g.unresolved else g.qid) for g in d.gold],
                )
                for d in read_jsonl(path, titles)
            )
        elif name.endswith((".xml", ".xml.bz2", ".xml.gz")):
            from xned.export.wiki_contexts import read_wikipedia_contexts

            docs = read_wikipedia_contexts(path, titles)
        else:
            raise InputError(f"{path}: unknown training format; use canonical .jsonl or a Wikipedia .xml[.bz2] dump")
        for d in docs:
            if source_langs and d.lang not in source_langs:
                continue
            yield d
            n += 1
            if max_docs is not None and n >= max_docs:
                return


def _lang_from_name(name: str) -> str | None:
    parts = name.split(".")
    return parts[-2] if len(parts) >= 3 and 2 <= len(parts[-2]) <= 3 else None


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


def collect_examples(
    linker: Any,
    docs: Iterable[TrainDoc],
    *,
    held_ids: set[str] | None = None,
    max_per_entity: int = 64,
    seed: int = 0,
    batch_docs: int = 16,
    log: Log = _noop,
) -> Examples:
    """Encode every labelled mention whose QID is in the KB. Per entity, a reservoir of at
    most ``max_per_entity`` vectors is kept (reproducible for a seed), so memory is bounded
    by ``entities x max_per_entity x dim`` whatever the corpus size."""
    rng = np.random.default_rng(seed)
    held_ids = held_ids or set()
    ex = Examples()
    slots: dict[int, list[int]] = defaultdict(list)  # entity -> positions in ex.vecs
    chunk: list[tuple[TrainDoc, list[tuple[int, int, int]]]] = []
    t0 = time.perf_counter()

    def flush() -> None:
        texts = [d.text for d, _ in chunk]
        spans = [[(s, e) for s, e, _ in sp] for _, sp in chunk]
        for (doc, sp), vecs in zip(chunk, linker.encoder.embed_mentions(texts, spans), strict=True):
            held = doc.id in held_ids
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


def pseudo_contexts(linker: Any, ents: np.ndarray, *, batch: int = 256) -> np.ndarray:
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
        out.extend(v[0] for v in linker.encoder.embed_mentions(texts, spans))
    dim = out[0].shape[-1] if out else 0
    return np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


# -- which experts --------------------------------------------------------------------------


def expert_sets(kb: Any, covered: np.ndarray) -> tuple[dict[tuple[int, ...], int], list[tuple[str, int]]]:
    """Candidate sets that get an expert and the (``lang<SEP>key``, model) index.

    ``covered[e]`` is True where entity ``e`` has a training context. An alias gets an
    expert when it has two or more candidates and at least one of them is covered."""
    models: dict[tuple[int, ...], int] = {}
    keys: list[tuple[str, int]] = []
    for table, offset in kb.tables_for(None):
        offs = np.asarray(table.offsets, np.int64)
        cands = np.asarray(table.cands, np.int64) + offset
        if len(offs) < 2 or not len(cands):
            continue
        sizes = np.diff(offs)
        hit = covered[cands].astype(np.int64)
        csum = np.concatenate([[0], np.cumsum(hit)])
        n_cov = csum[offs[1:]] - csum[offs[:-1]]
        for kid in np.nonzero((sizes >= 2) & (n_cov >= 1))[0].tolist():
            cset = tuple(sorted(cands[offs[kid] : offs[kid + 1]].tolist()))
            mid = models.setdefault(cset, len(models))
            keys.append((f"{table.lang}{SEP}{table.keys.restore_key(kid)}", mid))
    return models, keys


# -- the classifier -------------------------------------------------------------------------


def fit_softmax(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    sample_w: np.ndarray,
    *,
    steps: int = STEPS,
    lr: float = LR,
    l2: float = L2,
    temperature: float = TEMPERATURE,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression, ``W`` initialized at ``temperature`` times
    the normalized class centroids; full-batch gradient descent with momentum."""
    d = x.shape[1]
    w = np.zeros((k, d), np.float32)
    for c in range(k):
        m = y == c
        if m.any():
            cen = (x[m] * sample_w[m, None]).sum(0)
            w[c] = temperature * cen / max(float(np.linalg.norm(cen)), 1e-9)
    b = np.zeros(k, np.float32)
    sw = sample_w / sample_w.sum()
    onehot = np.zeros((len(y), k), np.float32)
    onehot[np.arange(len(y)), y] = 1.0
    vw = np.zeros_like(w)
    vb = np.zeros_like(b)
    for _ in range(steps):
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sw[:, None]
        gw = g.T @ x + l2 * w
        gb = g.sum(0)
        vw = 0.9 * vw - lr * temperature * gw
        vb = 0.9 * vb - lr * gb
        w += vw
        b += vb
    return w, b


@dataclass
class TrainedExperts:
    classes: list[np.ndarray]  # per model, global entity indices
    weights: list[np.ndarray]  # per model, [k, D] float32
    bias: list[np.ndarray]  # per model, [k] float32 (incl. the log frequency prior)
    keys: list[tuple[str, int]]
    stats: dict[str, Any]
    hubness: np.ndarray | None = None


HUB_PROBES = 4000
HUB_K = 10


def hubness(kb: Any, x: np.ndarray, *, seed: int = 0, chunk: int = 8192) -> np.ndarray | None:
    """Per KB entity, the mean of its ``HUB_K`` highest cosines to (up to ``HUB_PROBES``)
    source-language mention contexts: how close the entity's text is to contexts in
    general. Short or generic entity texts are "hubs" near everything; subtracting this
    (with a weight fit in calibration) is the CSLS correction of cross-lingual retrieval."""
    if not kb.has_vectors or not len(x):
        return None
    rng = np.random.default_rng(seed)
    probes = x[rng.choice(len(x), min(len(x), HUB_PROBES), replace=False)].astype(np.float32)
    n = len(kb.base.entities)
    out = np.zeros(n, np.float16)
    k = min(HUB_K, len(probes))
    for a in range(0, n, chunk):
        idx = np.arange(a, min(n, a + chunk))
        sims = kb.base.entities.vectors_of(idx) @ probes.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[a : a + len(idx)] = top.mean(axis=1)
    return out


def train_models(
    kb: Any,
    ents: np.ndarray,
    x: np.ndarray,
    seen: dict[int, int],
    pseudo: Callable[[np.ndarray], np.ndarray],
    *,
    pseudo_weight: float = 1.0,
    log: Log = _noop,
) -> TrainedExperts:
    covered = np.zeros(len(kb), bool)
    if len(ents):
        covered[np.unique(ents)] = True
    models, keys = expert_sets(kb, covered)
    log(f"experts: {len(keys)} aliases with a covered ambiguous candidate set -> {len(models)} models")
    by_ent: dict[int, np.ndarray] = {}
    if len(ents):
        order = np.argsort(ents, kind="stable")
        uniq, starts = np.unique(ents[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for j, e in enumerate(uniq.tolist()):
            by_ent[e] = order[bounds[j] : bounds[j + 1]]
    all_cands = np.array(sorted({e for cset in models for e in cset}), np.int64)
    log(f"experts: encoding pseudo-contexts of {len(all_cands)} candidate entities")
    pvec = pseudo(all_cands) if len(all_cands) else np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
    prow = {int(e): i for i, e in enumerate(all_cands.tolist())}
    classes, weights, biases = [], [], []
    t0 = time.perf_counter()
    n_ex = 0
    for mi, cset in enumerate(models):
        xs, ys, ws = [], [], []
        for c, e in enumerate(cset):
            rows = by_ent.get(e)
            n_real = 0 if rows is None else len(rows)
            if n_real:
                xs.append(x[rows])
                ys.append(np.full(n_real, c))
                ws.append(np.full(n_real, 1.0 / n_real))  # class balance: each class weighs 1
            xs.append(pvec[prow[e]][None])
            ys.append(np.array([c]))
            ws.append(np.array([pseudo_weight / (1.0 + n_real)]))
            n_ex += n_real
        w, b = fit_softmax(np.concatenate(xs), np.concatenate(ys), len(cset), np.concatenate(ws).astype(np.float32))
        freq = np.array([seen.get(e, 0) for e in cset], np.float64) + ALPHA
        b = b + np.log(freq / freq.sum()).astype(np.float32)
        classes.append(np.asarray(cset, np.int32))
        weights.append(w)
        biases.append(b)
        if (mi + 1) % 2000 == 0:
            log(f"experts: {mi + 1}/{len(models)} models ({time.perf_counter() - t0:.0f} s)")
    hub = hubness(kb, x)
    stats = {
        "models": len(models),
        "aliases": len(keys),
        "classes": int(sum(len(c) for c in classes)),
        "covered_entities": int(covered.sum()),
        "training_vectors": int(len(ents)),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    return TrainedExperts(classes, weights, biases, keys, stats, hub)


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
    trie.save(str(tmp / "keys.marisa"))
    _save_npy(tmp / "key_model.npy", key_model)
    _save_npy(tmp / "model_offsets.npy", np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    _save_npy(tmp / "classes.npy", np.concatenate(te.classes) if te.classes else np.zeros(0, np.int32))
    _save_npy(tmp / "weights.npy", q.astype(np.int8))
    _save_npy(tmp / "scales.npy", scales)
    _save_npy(tmp / "bias.npy", np.concatenate(te.bias).astype(np.float32) if te.bias else np.zeros(0, np.float32))
    if te.hubness is not None:
        _save_npy(tmp / "hubness.npy", te.hubness.astype(np.float16))
    langs = sorted({k.split(SEP, 1)[0] for k, _ in keys})
    full = {**meta, "dim": int(w.shape[1]) if w.ndim == 2 and len(w) else 0, "experts": len(sizes)}
    full["languages"] = langs
    full["stats"] = te.stats
    # the experts' own files; hubness.npy is per KB entity, not per expert
    nbytes = sum(p.stat().st_size for p in tmp.iterdir() if p.name != "hubness.npy")
    full["stats"]["bytes"] = nbytes
    full["stats"]["bytes_per_expert"] = round(nbytes / max(len(sizes), 1), 1)
    (tmp / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
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
    log: Log = _noop,
) -> dict[str, Any]:
    """Train the bundle's experts on ``files`` (source-language contexts only) and, with
    ``holdout > 0``, calibrate the fusion on held-out documents. Returns a summary."""
    from xned.engine.linker import Linker
    from xned.evaluate import load_titles
    from xned.export.bundle_ops import update_manifest
    from xned.export.calibrate import calibrate_on

    bundle = Path(bundle)
    src = set(source_langs or ["en"])
    title_map = load_titles(titles)
    linker = Linker.load(bundle, threads=threads, use_corrections=False)
    if not linker.kb.has_vectors and linker.encoder is None:
        raise InputError(f"Bundle {bundle} has no encoder; experts need mention-in-context vectors.")
    linker.experts = None  # train against the KB alone
    t0 = time.perf_counter()
    docs = list(read_training(files, titles=title_map, source_langs=src, max_docs=max_docs))
    if not docs:
        raise InputError(
            f"No training documents in language(s) {', '.join(sorted(src))} among {len(files)} file(s); "
            f"check --source-lang (a file's language is its 'lang' field or the code before .jsonl)."
        )
    held = [d for d in docs if in_holdout(d.id, holdout, seed)]
    log(f"experts: {len(docs)} source-language docs ({len(held)} held out for calibration)")
    held_ids = {d.id for d in held}
    ex = collect_examples(linker, docs, held_ids=held_ids, max_per_entity=max_per_entity, seed=seed, log=log)
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
    summary: dict[str, Any] = {"docs": len(docs), "mentions": ex.mentions, "not_in_kb": ex.unknown}
    experts_dir = bundle / "experts"
    if held:
        # Experts trained without the held-out documents score them for calibration.
        e_tr, x_tr = ex.arrays(without_held=True)
        te = train_models(linker.kb, e_tr, x_tr, ex.seen_kept, pseudo, log=log)
        tmp = bundle / "experts.calibration"
        write_experts(tmp, te, meta)
        try:
            from xned.engine.experts import Experts

            linker.experts = Experts(tmp)
            summary["calibration"] = calibrate_on(linker, held, bundle / "scoring.json", seed=seed, log=log)
        finally:
            linker.experts = None
            shutil.rmtree(tmp, ignore_errors=True)
    te = train_models(linker.kb, ents, x, ex.seen, pseudo, log=log)
    info = write_experts(experts_dir, te, meta)
    summary["experts"] = info["stats"]
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    update_manifest(bundle, provenance={"experts": {**meta, **info["stats"]}})
    return summary
