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

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.experts import Experts
from xned.engine.linker import Linker
from xned.errors import InputError
from xned.export.experts.calibrate import calibrate_on
from xned.export.experts.contexts import (
    CALIBRATION_DOCS,
    Checkpoint,
    Collector,
    Encoding,
    Examples,
    HeldDocs,
    read_pass,
    wanted_entities,
)
from xned.export.experts.fit import FitMap, TrainedExperts, train_models
from xned.export.manifest import update_manifest
from xned.export.training_docs import BundleTitles, TrainDoc, in_holdout, read_training
from xned.fsutil import inputs_key, replace_dir
from xned.logs import Log, Meter, silent
from xned.records import ReadProgress
from xned.titles import Titles, load_titles

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder


# -- training contexts: ``xned.export.experts.contexts`` ------------------------------------


def _encoder(linker: Linker) -> Encoder:
    if linker.encoder is None:
        raise InputError(f"Bundle {linker.root} has no encoder; experts need mention-in-context vectors.")
    return linker.encoder


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
    # the file says what was built, not how long it took: a rebuild (or a resumed run) of
    # the same inputs writes the same bytes
    full["stats"] = {k: v for k, v in te.stats.items() if not k.endswith("seconds")}
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
    calibration_docs: int = CALIBRATION_DOCS,
    checkpoint: Path | None = None,
    resume: bool = False,
    every: float = 600.0,
    encoding: Encoding | None = None,
    fit_map: FitMap | None = None,
    log: Log = silent,
) -> dict[str, Any]:
    """Train the bundle's experts on ``files`` (source-language contexts only) and, with
    ``holdout > 0``, calibrate the fusion on held-out documents (``absent``: also on that
    fraction of them as a bundle without their gold entity sees them). Returns a summary.

    Memory does not grow with the input: documents are streamed; only mentions of entities
    that an expert can have as a class are encoded, at most ``max_per_entity`` per entity;
    the held-out documents (the first ``calibration_docs`` that the hash split holds out;
    the later ones train like the rest) wait in a temporary file beside the bundle, not in
    memory.

    With ``checkpoint`` (a folder), the pass state is saved there every ``every`` seconds
    and at the end of the pass, and ``resume`` continues from it after a kill, writing the
    same bytes as an uninterrupted run (``xned.export.experts.contexts``). ``encoding``:
    where the contexts are encoded (default here; ``xned.integrations.ray.RayEncoding``);
    ``fit_map``: where the models are fit (``experts.fit.FitMap``)."""

    bundle = Path(bundle)
    src = set(source_langs or ["en"])
    for f in files:
        if not Path(f).is_file():
            raise InputError(f"Training file {f} not found.")
    linker = Linker.load(bundle, threads=threads, use_corrections=False)
    # a title map given, else the Wikipedia titles the KB build wrote (a dump's sitelinks)
    title_map: Titles = load_titles(titles) if titles is not None else BundleTitles(linker.root / L.KB, src)
    if linker.encoder is None:
        raise InputError(f"Bundle {bundle} has no encoder; experts need mention-in-context vectors.")
    linker.experts = None  # train against the KB alone
    t0 = time.perf_counter()
    wanted = wanted_entities(linker.kb)

    def wanted_qid(qid: str) -> bool:
        e = linker.kb.index(qid)
        return e >= 0 and bool(wanted[e])

    options = {
        "source_langs": sorted(src),
        "seed": seed,
        "holdout": holdout,
        "max_per_entity": max_per_entity,
        "max_docs": max_docs,
        "calibration_docs": calibration_docs,
    }
    ck = None
    if checkpoint is not None:
        inputs = [*files, linker.root / L.KB / L.KBDir.META, *([titles] if titles is not None else [])]
        ck = Checkpoint(Path(checkpoint), inputs_key(inputs, options), every)
    with contextlib.ExitStack() as stack:
        if ck is not None:
            stack.push(_drop_on_failure(ck))
        held, state = _held_docs(ck, resume, bundle, calibration_docs, stack)
        collector = Collector(
            linker, is_held=held.holds, max_per_entity=max_per_entity, seed=seed, wanted=wanted, encoding=encoding
        )
        skip = 0
        if state is not None and ck is not None:
            collector.load(ck.folder, state)
            skip = int(state["consumed"])
            log(f"experts: resuming after {skip:,} documents ({collector.progress()})")
        read = ReadProgress()
        meter = Meter(log, "documents", total_bytes=sum(Path(f).stat().st_size for f in files), progress=read)
        stream = read_training(
            files, titles=title_map, source_langs=src, max_docs=max_docs, progress=read, wanted=wanted_qid
        )
        consumed = read_pass(stream, collector, held, lambda d: in_holdout(d, holdout, seed), skip, ck, meter)
        ex = collector.ex
        log(f"experts: read {meter.line(consumed, collector.progress())}")
        summary = _train_and_write(
            linker,
            ex,
            held,
            bundle=bundle,
            files=files,
            src=src,
            seed=seed,
            max_per_entity=max_per_entity,
            absent=absent,
            t0=t0,
            fit_map=fit_map,
            log=log,
        )
    if ck is not None:
        ck.remove()
    return summary


def _drop_on_failure(ck: Checkpoint) -> Callable[..., bool]:
    """An exit callback: a run that fails (bad input, no usable mention) leaves nothing to
    resume, so its checkpoint goes; an interruption or a kill keeps it."""

    def on_exit(kind: type[BaseException] | None, *_: Any) -> bool:
        if kind is not None and issubclass(kind, Exception):
            ck.remove()
        return False

    return on_exit


def _held_docs(
    ck: Checkpoint | None, resume: bool, bundle: Path, cap: int, stack: contextlib.ExitStack
) -> tuple[HeldDocs, dict[str, Any] | None]:
    """Where the held-out documents wait (the checkpoint's folder, else a temporary one
    beside the bundle), and the saved state to resume from (None: a fresh start)."""
    if ck is None:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".xned-held-", dir=bundle.parent)))
        return HeldDocs(tmp / "held.jsonl", cap), None
    state = ck.start(resume)
    if state is None:
        return HeldDocs(ck.held_path, cap), None
    return HeldDocs(ck.held_path, cap, ids=state["held_ids"]), state


def _train_and_write(
    linker: Linker,
    ex: Examples,
    held: HeldDocs,
    *,
    bundle: Path,
    files: list[Path],
    src: set[str],
    seed: int,
    max_per_entity: int,
    absent: float,
    t0: float,
    fit_map: FitMap | None,
    log: Log,
) -> dict[str, Any]:
    """Fit the experts on ``ex`` (first without the held-out documents, to calibrate the
    fusion on them) and write them into ``bundle``."""
    if not ex.docs:
        raise InputError(
            f"No training documents in language(s) {', '.join(sorted(src))} among {len(files)} file(s); "
            f"check --source-lang (a file's language is its 'lang' field or the code before .jsonl)."
        )
    log(f"experts: {ex.docs} source-language docs ({held.count} held out for calibration)")
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
    summary: dict[str, Any] = {
        "docs": ex.docs,
        "mentions": ex.mentions,
        "encoded": ex.encoded,
        "not_in_kb": ex.unknown,
        "held_out_docs": held.count,
    }
    experts_dir = bundle / L.EXPERTS
    if held.count:
        e_tr, x_tr = ex.arrays(without_held=True)
        te = train_models(linker.kb, e_tr, x_tr, ex.seen_kept, pseudo, fit_map=fit_map, log=log)
        summary["calibration"] = _calibrate_held_out(linker, te, meta, held.read(), seed=seed, absent=absent, log=log)
    te = train_models(linker.kb, ents, x, ex.seen, pseudo, fit_map=fit_map, log=log)
    info = write_experts(experts_dir, te, meta)
    summary["experts"] = {**info["stats"], "train_seconds": te.stats.get("train_seconds")}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    update_manifest(bundle, provenance={"experts": {**meta, **info["stats"]}})
    return summary


def _calibrate_held_out(
    linker: Linker,
    te: TrainedExperts,
    meta: dict[str, Any],
    held: Iterable[TrainDoc],
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
