"""Fit the fusion of ``xned/engine/scoring.py`` on annotated documents.

Three small fits on the features of every candidate of every gold-span mention:

1. **Ranking weights** ``w``: a conditional logit (softmax over each mention's candidates,
   the gold one as the target) over the mentions whose gold entity is a candidate, by
   Newton's method with a small ridge. This is what decides which candidate wins.
2. **Confidence**: ``sigmoid(a * (w . f_top) + c)`` fit to "the top candidate is the gold
   entity" over every mention (NIL gold counts as wrong), so ``score`` is a probability.
   The stored weights are ``a * w`` and the bias ``c``: ranking is unchanged.
3. **NIL threshold**: the highest confidence whose accuracy over all mentions is within
   one standard error of the best (``choose_threshold``), where a mention whose gold is NIL,
   or an entity the KB does not hold, is right when the linker answers NIL.

The documents must not be the ones the experts were trained on (their expert features
would be too good); ``xned experts train`` uses held-out documents for this.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine import layout as L
from xned.engine.linker import Analysis, Linker
from xned.engine.scoring import FEATURES, MENTION_FEATURES, Scorer
from xned.errors import InputError
from xned.export.manifest import update_manifest
from xned.export.training_docs import UNRESOLVED, read_training
from xned.fsutil import atomic_write_text
from xned.logs import Log, silent
from xned.titles import load_titles

#: columns of the mention-level features (``MENTION_FEATURES``)
PER_MENTION = [i for i, k in enumerate(FEATURES) if k in MENTION_FEATURES]

if TYPE_CHECKING:
    from xned.engine.linker import Linker

RIDGE = 1e-2


def gather(linker: Linker, docs: Iterable[Any], *, batch: int = 16) -> list[tuple[np.ndarray, int]]:
    """Per mention: (feature matrix ``[n_cands, F]``, gold row, or -1 for a gold entity of
    the KB that is no candidate, or -2 where NIL is right: NIL gold, or a gold entity the KB
    does not hold). Unresolved gold is skipped. ``docs`` are read once, ``batch`` at a time."""

    sc = Scorer()
    out: list[tuple[np.ndarray, int]] = []
    stream = iter(docs)
    while chunk := list(itertools.islice(stream, batch)):
        inputs = [
            {"id": d.id, "lang": d.lang, "text": d.text, "mentions": [(s, e) for s, e, _ in d.spans]} for d in chunk
        ]
        for d, res in zip(chunk, linker.analyze(inputs, given_spans=True), strict=True):
            if not isinstance(res, Analysis):
                continue
            for (_, _, qid), f in zip(d.spans, res.mentions, strict=True):
                if qid == UNRESOLVED:
                    continue
                feats = f.matrix(sc)
                gold = -1 if qid is None else linker.kb.index(qid)
                if gold < 0:  # NIL gold, or an entity the bundle lacks: NIL is its right answer
                    out.append((feats, -2))
                    continue
                rows = np.nonzero(np.asarray(f.ents) == gold)[0]
                out.append((feats, int(rows[0]) if len(rows) else -1))
    return out


def simulate_absent(
    groups: list[tuple[np.ndarray, int]], fraction: float, seed: int = 0
) -> list[tuple[np.ndarray, int]]:
    """Copies of a seeded ``fraction`` of the mentions whose gold entity is one of several
    candidates, as they would be in a bundle that lacks that entity (a laptop bundle holds a
    few million of Wikidata's ~110M): the gold row removed, the others' priors renormalized
    over what is left (``p / (1 - p_gold)``, as the KB build would have computed them), their
    expert probabilities likewise, ``sim_gap`` taken to the best remaining cosine, and the
    gold NIL. The remaining candidates are the traps a linker must not take: fitting the
    confidence on these too makes NIL decisions expect an incomplete KB."""
    if fraction <= 0:
        return []
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, int]] = []
    for f, g in groups:
        if g < 0 or len(f) < 2 or rng.random() >= fraction:
            continue
        rest = np.delete(f.astype(np.float32), g, axis=0)
        p = np.exp(f[:, 0].astype(np.float64))
        left = 1.0 - min(p[g], 1.0)
        if left > 1e-6:
            rest[:, 0] = np.log(np.maximum(np.minimum(np.delete(p, g) / left, 1.0), 1e-4))
        sims = rest[:, 1]
        if sims.any():
            rest[:, 2] = sims - sims.max()
        has = rest[:, 4] > 0
        if has.any():  # the expert's softmax over the classes that are left
            q = np.exp(rest[has, 3].astype(np.float64))
            rest[has, 3] = np.log(np.maximum(q / max(q.sum(), 1e-12), 1e-4))
        out.append((rest, -2))
    return out


def fit_ranking(groups: list[tuple[np.ndarray, int]], *, iters: int = 50) -> np.ndarray:
    """Conditional-logit weights over groups with a gold candidate and >= 2 candidates:
    Newton's method, each step halved until the penalized log-likelihood does not fall (a
    full step can overshoot when a feature nearly separates gold from the rest). The
    mention-level features are left out (their weights stay 0): a dense-only candidate has
    ``partial`` 0 beside alias candidates at 1, which would tie the dense weight to it."""
    usable = [(f.astype(np.float64), g) for f, g in groups if g >= 0 and len(f) >= 2]
    for f, _ in usable:
        f[:, PER_MENTION] = 0.0
    k = len(FEATURES)
    w = np.zeros(k)
    if not usable:
        return w

    def loglik(w: np.ndarray) -> float:
        total = -0.5 * RIDGE * float(w @ w)
        for f, g in usable:
            z = f @ w
            m = z.max()
            total += float(z[g] - m - np.log(np.exp(z - m).sum()))
        return total

    current = loglik(w)
    for _ in range(iters):
        grad = -RIDGE * w
        hess = -RIDGE * np.eye(k)
        for f, g in usable:
            z = f @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            mean = p @ f
            grad += f[g] - mean
            hess -= (f.T * p) @ f - np.outer(mean, mean)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:
            trial = loglik(w - t * step)
            if trial >= current - 1e-9:
                break
            t /= 2
        else:
            break  # no step improves the fit: at the optimum up to rounding
        w, current = w - t * step, trial
        if np.abs(t * step).max() < 1e-6:
            break
    return w


def fit_confidence(x: np.ndarray, y: np.ndarray, *, iters: int = 50) -> np.ndarray:
    """Logistic regression ``sigmoid(x @ theta[:-1] + theta[-1])`` (Newton); ``x`` is
    ``[n, d]``: the ranking score, then the mention-level features."""
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    theta = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (y - p) - RIDGE * theta
        hess = -(x.T * (p * (1 - p))) @ x - RIDGE * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta


def fit(groups: list[tuple[np.ndarray, int]]) -> dict[str, Any]:
    """Ranking weights by conditional logit, then the confidence of the top candidate by a
    logistic regression on its ranking score and the mention-level features (constant over
    a mention's candidates, they say nothing about the ranking but much about NIL: a name
    found only inside a longer mention is seldom what it names)."""
    if not groups:
        raise InputError("No usable mentions to calibrate on (no gold spans with candidates or NIL gold).")
    w = fit_ranking(groups)
    tops, ys, golds, extra = [], [], [], []
    for f, g in groups:
        if not len(f):
            continue
        z = f.astype(np.float64) @ w
        top = int(np.argmax(z))
        tops.append(z[top])
        extra.append(f[top, PER_MENTION].astype(np.float64))
        ys.append(1.0 if g == top else 0.0)
        golds.append(g)
    s, y = np.asarray(tops), np.asarray(ys)
    x = np.concatenate([s[:, None], np.asarray(extra).reshape(len(s), len(PER_MENTION))], axis=1)
    theta = fit_confidence(x, y) if len(s) and 0 < y.sum() < len(y) else np.r_[1.0, np.zeros(len(PER_MENTION)), 0.0]
    a, b, c = float(theta[0]), theta[1:-1], float(theta[-1])
    if a <= 0:  # the ranking score says nothing about correctness here: keep it monotone
        a = 1e-3
    conf = 1.0 / (1.0 + np.exp(-(a * s + x[:, 1:] @ b + c)))
    best_t, best_acc, top_acc = choose_threshold(conf, y, np.asarray([g == -2 for g in golds]), groups)
    weights = {k: round(float(a * w[i]), 6) for i, k in enumerate(FEATURES)}
    weights.update({FEATURES[i]: round(float(bi), 6) for i, bi in zip(PER_MENTION, b, strict=True)})
    sim_range, sim_typical = similarity_range(groups)
    in_cands = [g >= 0 for _, g in groups]
    top1 = [bool(yv) for yv, g in zip(ys, golds, strict=True) if g >= 0]
    return {
        "weights": weights,
        "bias": round(c, 6),
        "threshold": round(best_t, 4),
        "sim_range": sim_range,
        "sim_typical": sim_typical,
        "fit": {
            "mentions": len(groups),
            "nil_gold": int(sum(1 for _, g in groups if g == -2)),
            "gold_in_candidates": int(sum(in_cands)),
            "ranking_accuracy_in_candidates": round(float(np.mean(top1)), 4) if top1 else None,
            "accuracy_with_nil": round(best_acc, 4),
            "best_accuracy_with_nil": round(top_acc, 4),
            "confidence_slope": round(a, 6),
        },
    }


def choose_threshold(
    conf: np.ndarray, right: np.ndarray, nil_gold: np.ndarray, groups: list[tuple[np.ndarray, int]]
) -> tuple[float, float, float]:
    """(threshold, accuracy there, best accuracy) over every mention, where a mention is right
    when its top candidate is linked and gold, or it is NIL and its gold is NIL (mentions with
    no candidate are NIL anyway). Accuracy is flat near its best (a wide plateau on the
    protocol's held-out documents: 0.40-0.48 within 0.1 point); of the thresholds within one
    standard error of the best, the highest: a link is a promise to the analyst, and those
    thresholds do not tell accuracy apart on this many mentions."""
    no_cand_nil = sum(1 for f, g in groups if not len(f) and g == -2)
    grid = np.linspace(0.0, 0.95, 96)
    accs = np.array(
        [
            (int(((conf >= t) & (right > 0)).sum() + ((conf < t) & nil_gold).sum()) + no_cand_nil) / len(groups)
            for t in grid
        ]
    )
    top = float(accs.max())
    se = float(np.sqrt(top * (1.0 - top) / len(groups)))
    i = int(np.nonzero(accs >= top - se - 1e-12)[0].max())
    return float(grid[i]), float(accs[i]), top


def similarity_range(groups: list[tuple[np.ndarray, int]]) -> tuple[list[float], float]:
    """The 0.5th-99.5th percentile range of candidate cosines and the median cosine of
    mentions with one candidate: a single candidate is linked without encoding its context
    when no cosine in that range could change its NIL decision (``Scorer.without_context``)."""
    sims = np.concatenate([f[:, 1] for f, _ in groups if len(f)]) if groups else np.zeros(0)
    sims = sims[sims != 0.0]  # 0 = no vector
    if not len(sims):
        return [0.0, 1.0], 0.8
    lo, hi = (round(float(x), 4) for x in np.percentile(sims, [0.5, 99.5]))
    single = [float(f[0, 1]) for f, _ in groups if len(f) == 1 and f[0, 1] != 0.0]
    typical = float(np.median(single)) if single else float(np.median(sims))
    return [lo, hi], round(min(max(typical, lo), hi), 4)


def write_scoring(path: Path, result: dict[str, Any]) -> None:
    """Write ``scoring.json``; the corrections' reach (a property of the encoder, not of the
    fit: ``xned.export.experts.reach``) is kept from the file it replaces."""
    if path.is_file() and "corrections_reach" not in result:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict) and "corrections_reach" in old:
            result = {**result, "corrections_reach": old["corrections_reach"]}
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")


def calibrate_on(
    linker: Linker,
    docs: Iterable[Any],
    out: Path,
    *,
    seed: int = 0,
    absent: float = 0.0,
    log: Log = silent,
) -> dict[str, Any]:
    """Fit on ``docs`` (``TrainDoc``) with ``linker`` as it is (its experts included) and
    write ``out`` (``scoring.json``); with ``absent``, also on that fraction of the mentions
    as a bundle without their gold entity would see them (``simulate_absent``)."""
    t0 = time.perf_counter()
    groups = gather(linker, docs)
    simulated = simulate_absent(groups, absent, seed)
    result = fit(groups + simulated)
    result["fit"]["absent"] = {"fraction": absent, "mentions": len(simulated)}
    result["fit"]["seed"] = seed
    write_scoring(Path(out), result)  # no timing in the file: the same inputs write the same bytes
    result["fit"]["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"calibration: {json.dumps(result)}")
    return result


def calibrate(
    bundle: Path,
    files: list[Path],
    *,
    titles: Path | None = None,
    langs: list[str] | None = None,
    threads: int | None = None,
    absent: float = 0.0,
    log: Log = silent,
) -> dict[str, Any]:
    """``xned experts calibrate``: fit the bundle's fusion on annotated files (which must
    not be the experts' training documents) and write ``scoring.json``."""

    bundle = Path(bundle)
    linker = Linker.load(bundle, threads=threads, use_corrections=False)
    docs = list(read_training(files, titles=load_titles(titles), source_langs=set(langs) if langs else None))
    if not docs:
        raise InputError(f"No documents to calibrate on in {', '.join(str(f) for f in files)}.")
    result = calibrate_on(linker, docs, bundle / L.SCORING, absent=absent, log=log)
    update_manifest(bundle, provenance={"scoring": {"files": [Path(f).name for f in files], **result["fit"]}})
    return result
