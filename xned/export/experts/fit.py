"""The word experts' models: which candidate sets get one, the class-balanced softmax fit per
set with the source-language frequency prior, and the entities' hubness (CSLS).

The model of a candidate set ``C`` is ``p(e | x) = softmax_e(w_e · x + b_e + log π_e)``:
``w_e, b_e`` are fit by class-balanced, L2-regularized multinomial logistic regression
(initialized at the class centroids), so they carry the context evidence only; ``π_e`` is
the entity's smoothed source-language frequency among the candidates, the expert's prior.
Aliases (in any language) whose candidate sets are equal share one model. Experts are
built only for aliases with two or more candidates of which at least one has a real
training context: elsewhere the linker falls back to similarity + prior.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine import layout as L
from xned.logs import Log, silent

if TYPE_CHECKING:
    from xned.engine.kb import KB


TEMPERATURE = 20.0  # scale of the centroid initialization (cosines of contexts sit in a narrow band)


L2 = 1e-3


STEPS = 150


LR = 0.5


ALPHA = 1.0  # add-alpha smoothing of the source-language frequency prior


def expert_sets(kb: KB, covered: np.ndarray) -> tuple[dict[tuple[int, ...], int], list[tuple[str, int]]]:
    """Candidate sets that get an expert and the (``lang<L.FIELD_SEP>key``, model) index.

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
            keys.append((f"{table.lang}{L.FIELD_SEP}{table.keys.restore_key(kid)}", mid))
    return models, keys


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


def hubness(kb: KB, x: np.ndarray, *, seed: int = 0, chunk: int = 8192) -> np.ndarray | None:
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
        vecs = kb.base.entities.vectors_of(idx)
        if vecs is None:
            return None
        sims = vecs @ probes.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[a : a + len(idx)] = top.mean(axis=1)
    return out


@dataclass(frozen=True)
class FitData:
    """What every model's fit reads: the training vectors ``x`` grouped by entity (rows
    ``order[bounds[j]:bounds[j + 1]]`` belong to ``ents[j]``, sorted) and each candidate's
    pseudo-context (``pvec[j]`` for ``pents[j]``, sorted)."""

    x: np.ndarray
    order: np.ndarray
    ents: np.ndarray
    bounds: np.ndarray
    pvec: np.ndarray
    pents: np.ndarray
    pseudo_weight: float = 1.0

    def rows(self, e: int) -> np.ndarray | None:
        j = int(np.searchsorted(self.ents, e))
        if j < len(self.ents) and int(self.ents[j]) == e:
            return self.order[self.bounds[j] : self.bounds[j + 1]]
        return None


def fit_models(data: FitData, csets: list[tuple[int, ...]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights, bias) of the softmax of each candidate set (without the frequency prior):
    the training vectors of its entities, class-balanced, plus each one's pseudo-context."""
    out = []
    for cset in csets:
        xs, ys, ws = [], [], []
        for c, e in enumerate(cset):
            rows = data.rows(e)
            n_real = 0 if rows is None else len(rows)
            if n_real:
                xs.append(data.x[rows])
                ys.append(np.full(n_real, c))
                ws.append(np.full(n_real, 1.0 / n_real))  # class balance: each class weighs 1
            xs.append(data.pvec[int(np.searchsorted(data.pents, e))][None])
            ys.append(np.array([c]))
            ws.append(np.array([data.pseudo_weight / (1.0 + n_real)]))
        out.append(
            fit_softmax(np.concatenate(xs), np.concatenate(ys), len(cset), np.concatenate(ws).astype(np.float32))
        )
    return out


#: models per unit of work handed to a ``FitMap`` (a Ray task)
FIT_CHUNK = 500
#: fits chunks of candidate sets: ``fit_map(data, chunks)`` -> per chunk, ``fit_models``'s
#: result, in order (``local_fit_map`` here; ``xned.integrations.ray.ray_fit_map``)
FitMap = Callable[[FitData, list[list[tuple[int, ...]]]], list[list[tuple[np.ndarray, np.ndarray]]]]


def local_fit_map(data: FitData, chunks: list[list[tuple[int, ...]]]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    return [fit_models(data, c) for c in chunks]


def train_models(
    kb: KB,
    ents: np.ndarray,
    x: np.ndarray,
    seen: dict[int, int],
    pseudo: Callable[[np.ndarray], np.ndarray],
    *,
    pseudo_weight: float = 1.0,
    fit_map: FitMap | None = None,
    log: Log = silent,
) -> TrainedExperts:
    covered = np.zeros(len(kb), bool)
    if len(ents):
        covered[np.unique(ents)] = True
    models, keys = expert_sets(kb, covered)
    log(f"experts: {len(keys)} aliases with a covered ambiguous candidate set -> {len(models)} models")
    order = np.argsort(ents, kind="stable")
    uniq, starts = np.unique(ents[order], return_index=True)
    bounds = np.append(starts, len(order)).astype(np.int64)
    all_cands = np.array(sorted({e for cset in models for e in cset}), np.int64)
    log(f"experts: encoding pseudo-contexts of {len(all_cands)} candidate entities")
    pvec = pseudo(all_cands) if len(all_cands) else np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
    data = FitData(x, order, uniq.astype(np.int64), bounds, pvec, all_cands, pseudo_weight)
    t0 = time.perf_counter()
    csets = list(models)
    chunks = [csets[i : i + FIT_CHUNK] for i in range(0, len(csets), FIT_CHUNK)]
    fitted = [wb for part in (fit_map or local_fit_map)(data, chunks) for wb in part]
    classes, weights, biases = [], [], []
    for cset, (w, b) in zip(csets, fitted, strict=True):
        freq = np.array([seen.get(e, 0) for e in cset], np.float64) + ALPHA
        classes.append(np.asarray(cset, np.int32))
        weights.append(w)
        biases.append(b + np.log(freq / freq.sum()).astype(np.float32))
    log(f"experts: {len(csets)} models fitted ({time.perf_counter() - t0:.0f} s)")
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
