"""The entity store of a KB part (read side): QIDs, "label\x1fdescription" records, types,
popularity and the int8 entity vectors, memory-mapped and checked when opened (layout:
``xned.engine.layout.Entities``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import REBUILD_HINT
from xned.engine.tables import load_npy, load_trie
from xned.errors import BundleError


class EntityStore:
    def __init__(self, root: Path):
        self.root = root
        self.qids = load_trie(root / L.Entities.QIDS)
        self.text = (
            np.memmap(root / L.Entities.TEXT, dtype=np.uint8, mode="r")
            if (root / L.Entities.TEXT).stat().st_size
            else np.zeros(0, np.uint8)
        )
        self.text_offsets = load_npy(root / L.Entities.TEXT_OFFSETS)
        self.type_ids = load_npy(root / L.Entities.TYPE)
        self.popularity = load_npy(root / L.Entities.POPULARITY)
        n = len(self.qids)
        if len(self.text_offsets) != n + 1 or len(self.type_ids) != n or len(self.popularity) != n:
            raise BundleError(f"Entity store {root} is inconsistent ({n} QIDs); {REBUILD_HINT}.")
        vec = root / L.Entities.VECTORS
        self.vectors: np.ndarray | None = None
        self.vector_scales: np.ndarray | None = None
        self.vector_rows: np.ndarray | None = None  # None: row i is entity i
        if vec.exists():
            self.vectors = load_npy(vec)
            self.vector_scales = load_npy(root / L.Entities.VECTOR_SCALES)
            m = n
            if (root / L.Entities.VECTOR_ROWS).exists():
                self.vector_rows = load_npy(root / L.Entities.VECTOR_ROWS)
                m = self.vectors.shape[0]
                if len(self.vector_rows) != n or (n and int(self.vector_rows.max()) >= m):
                    raise BundleError(f"Entity vector rows in {root} do not match {n} entities; {REBUILD_HINT}.")
            if self.vectors.ndim != 2 or self.vectors.shape[0] != m or self.vector_scales.shape[0] != m:
                raise BundleError(f"Entity vectors in {root} do not match {n} entities; {REBUILD_HINT}.")

    def __len__(self) -> int:
        return len(self.qids)

    def qid(self, idx: int) -> str:
        return self.qids.restore_key(int(idx))

    def index(self, qid: str) -> int:
        return self.qids.get(qid, -1)

    def record(self, idx: int) -> tuple[str, str]:
        a, b = int(self.text_offsets[idx]), int(self.text_offsets[idx + 1])
        label, _, desc = bytes(self.text[a:b]).decode("utf-8").partition(L.FIELD_SEP)
        return label, desc

    def vectors_of(self, idxs: np.ndarray) -> np.ndarray | None:
        if self.vectors is None or self.vector_scales is None:
            return None
        if self.vector_rows is None:
            return self.vectors[idxs].astype(np.float32) * self.vector_scales[idxs, None]
        rows = np.asarray(self.vector_rows[idxs], np.int64)
        out = np.zeros((len(rows), self.vectors.shape[1]), np.float32)
        have = rows >= 0  # the others have no vector: rows of zeros
        out[have] = self.vectors[rows[have]].astype(np.float32) * self.vector_scales[rows[have], None]
        return out
