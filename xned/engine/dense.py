"""Dense candidate retrieval: the KB entities nearest to a mention in context.

Alias tables find an entity only where the KB has a name for it in the mention's script or
close to it; a Japanese mention of a person the KB names only in English has no candidate.
The encoder already puts the mention in context and every entity text ("label:
description") in one multilingual space, so the entity vectors nearest to the mention vector
are candidates that need no alias at all.

The index is an HNSW graph (cosine) over the KB's entity vectors *centred*: the mean entity
vector (``kb/dense_mean.npy``) is subtracted from entities and mentions alike. E5-style
vectors share a large common component (every cosine sits near 0.8), which leaves HNSW's
greedy search little to go on; centred, the nearest 30 held the gold entity of 47% of
Japanese and 73% of English MEANTIME mentions at ``expansion_search`` 64, against 12% and
35% uncentred (brute force: 64% / 84% centred, 47% / 82% not). Built by ``xned kb index`` /
``xned kb build`` into ``kb/dense.usearch`` and memory-mapped here (usearch ``view``), so
worker processes share it through the page cache. Retrieved entities join the
alias candidates after them (``xned.engine.names.with_found``), with prior 0 and the
``dense`` feature set, so the calibrated fusion decides how much a retrieved candidate is worth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.errors import BundleError

INDEX_FILE = L.KBDir.DENSE_INDEX
MEAN_FILE = L.KBDir.DENSE_MEAN
EXPANSION_SEARCH = 128  # beam width of a search: recall against time, measured in the README


class DenseIndex:
    """Nearest-entity search over ``kb/dense.usearch`` (opened on first use)."""

    def __init__(self, path: Path, n_entities: int, dim: int, mean_file: str = MEAN_FILE):
        self.path = path
        self.mean_file = mean_file
        self.n_entities = n_entities
        self.dim = dim
        self._index: Any = None
        self._mean: np.ndarray | None = None

    def _open(self) -> Any:
        if self._index is None:
            from usearch.index import Index

            try:
                index = Index.restore(str(self.path), view=True)
            except Exception as exc:  # usearch raises RuntimeError/ValueError on a bad file
                raise BundleError(
                    f"{self.path} is not a usearch index ({exc}); rebuild it with: xned kb index"
                ) from None
            if index is None:
                raise BundleError(f"{self.path} is not a usearch index; rebuild it with: xned kb index")
            if index.ndim != self.dim or len(index) > self.n_entities:  # fewer: --vectors ambiguous
                raise BundleError(
                    f"{self.path} holds {len(index)} vectors of {index.ndim} dimensions but the KB has "
                    f"{self.n_entities} entities of {self.dim}; rebuild it with: xned kb index"
                )
            mean_path = self.path.with_name(self.mean_file)
            try:
                mean = np.load(mean_path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise BundleError(
                    f"{mean_path} is missing or unreadable ({exc}); rebuild it with: xned kb index"
                ) from None
            if mean.shape != (self.dim,) or not np.isfinite(mean).all():
                raise BundleError(f"{mean_path} is not a finite vector of {self.dim}; rebuild it with: xned kb index")
            index.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]  # the setter is untyped
            self._mean = mean.astype(np.float32)
            self._index = index
        return self._index

    @staticmethod
    def centre(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Unit-normalize, subtract ``mean``, unit-normalize again (rows)."""
        v = np.asarray(vectors, np.float32)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9) - mean
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    def check(self) -> None:
        """Open the index now: a broken file is the bundle's error, not one document's."""
        self._open()

    def centred(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` centred on this index's mean, as its entries and queries are."""
        self._open()
        assert self._mean is not None
        return self.centre(vectors, self._mean)

    def stored(self, ids: np.ndarray) -> np.ndarray:
        """The indexed (centred, unit, int8-rounded) vectors of entities ``ids`` as float32
        ``[n, dim]``; zeros for an entity the index does not hold."""
        out = np.zeros((len(ids), self.dim), np.float32)
        if len(ids):
            got = self._open().get(np.asarray(ids, np.uint64), dtype=np.float32)
            for r, v in enumerate(got if isinstance(got, tuple) else [got]):
                if v is not None:
                    out[r] = v
        return out

    def search(self, vectors: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per row of ``vectors`` [B, dim]: (entity indices, centred cosines), nearest first."""
        if not len(vectors):
            return []
        index = self._open()
        assert self._mean is not None
        queries = np.ascontiguousarray(self.centre(vectors, self._mean))
        matches = index.search(queries, k, threads=1)
        keys = np.asarray(matches.keys).reshape(len(vectors), -1)
        dist = np.asarray(matches.distances, dtype=np.float32).reshape(len(vectors), -1)
        # one query gives a Matches (its keys are the hits), several a BatchMatches
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]])).reshape(-1)
        out = []
        for row in range(len(vectors)):
            n = int(counts[row])
            ids = keys[row, :n].astype(np.int64)
            ok = (ids >= 0) & (ids < self.n_entities)
            out.append((ids[ok].astype(np.int32), 1.0 - dist[row, :n][ok]))
        return out


def open_dense(kb_root: Path, n_entities: int, dim: int, names: bool = False) -> DenseIndex | None:
    """The bundle's index if it has one (usearch is imported on the first search): of entity
    vectors, or with ``names`` of entity labels (``xned.engine.names``)."""
    index_file, mean_file = (L.KBDir.NAMES_INDEX, L.KBDir.NAMES_MEAN) if names else (INDEX_FILE, MEAN_FILE)
    path = kb_root / index_file
    if not path.is_file():
        return None
    if not dim or not (kb_root / mean_file).is_file():
        raise BundleError(
            f"{path} needs entity vectors and {kb_root / mean_file}; rebuild it with: xned kb index, "
            f"or delete it to link without {'name' if names else 'dense'} candidates"
        )
    return DenseIndex(path, n_entities, dim, mean_file)
