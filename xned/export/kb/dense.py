"""Build the dense retrieval index of a bundle (``kb/dense.usearch`` + ``kb/dense_mean.npy``,
see ``xned.engine.dense``).

An HNSW graph (usearch, cosine, int8) over the base KB's entity vectors, centred on their
mean. Built in the KB build when vectors are computed, or afterwards with ``xned kb index``;
both replace the files atomically and rehash the manifest.

The graph is built on one thread: usearch's multi-threaded insertion races between
threads, so two builds of the same vectors gave different bytes (and a compacted KB no
longer equalled a full rebuild). One thread is deterministic: the same vectors give the
same file, which the incremental and sharded builds rely on. Measured on the
evaluation-protocol KB (161,892 entities x 384): 113 s on one thread (60-70 s on two), 86 MB.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.engine.dense import INDEX_FILE, MEAN_FILE, DenseIndex
from xned.errors import InputError
from xned.fsutil import atomic_file, fsync_dir, replace_file
from xned.logs import Log, silent

CONNECTIVITY = 16  # graph degree (usearch default)
EXPANSION_ADD = 128  # beam width while building
CHUNK = 50_000  # vectors added per call


def build_dense_index(kb_root: Path, *, log: Log = silent) -> dict[str, Any]:
    """Write ``kb_root/dense.usearch`` from ``kb_root/entities/vectors.npy`` (deterministic)."""
    path = Path(kb_root) / L.KBDir.ENTITIES / L.Entities.VECTORS
    if not path.is_file():
        raise InputError(
            f"{kb_root} has no entity vectors ({path}); build the KB with an encoder and without --no-vectors."
        )
    vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    if vectors.ndim != 2 or vectors.dtype != np.int8:
        raise InputError(f"{path} is not an int8 [entities, dim] array; rebuild the KB.")
    rows_path = path.with_name(L.Entities.VECTOR_ROWS)  # kb build --vectors ambiguous: row r is entity ents[r]
    ents = np.flatnonzero(np.load(rows_path, allow_pickle=False) >= 0) if rows_path.is_file() else None
    t0 = time.perf_counter()
    n = len(vectors)
    total = np.zeros(vectors.shape[1], np.float64)
    for start in range(0, n, CHUNK):  # the mean of the unit vectors
        v = np.asarray(vectors[start : start + CHUNK], np.float32)
        total += (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)).sum(axis=0)
    mean = (total / max(n, 1)).astype(np.float32)
    size = write_index(
        Path(kb_root), INDEX_FILE, MEAN_FILE, ents, vectors, mean, log=log, what="dense index", unit="entities"
    )
    return {"entities": n, "bytes": size, "seconds": round(time.perf_counter() - t0, 1)}


def write_index(
    kb_root: Path,
    index_file: str,
    mean_file: str,
    keys: np.ndarray | None,
    vectors: np.ndarray,
    mean: np.ndarray,
    *,
    log: Log = silent,
    what: str = "index",
    unit: str = "vectors",
) -> int:
    """Index the rows of ``vectors`` (keyed by ``keys``, default their row numbers) centred on
    ``mean`` in an HNSW graph (cosine, int8) built on one thread, so the same vectors give the
    same file; write it and the mean atomically. Returns the index's size in bytes."""
    from usearch.index import Index

    n = len(vectors)
    index = Index(
        ndim=int(vectors.shape[1]), metric="cos", dtype="i8", connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD
    )
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        ids = np.arange(start, stop) if keys is None else keys[start:stop]
        index.add(ids, DenseIndex.centre(vectors[start:stop], mean), threads=1)
        log(f"{what}: {stop:,}/{n:,} {unit}")
    out = kb_root / index_file
    tmp = out.with_name(out.name + ".incomplete")
    index.save(str(tmp))
    replace_file(tmp, out)
    with atomic_file(kb_root / mean_file, "wb") as f:
        np.save(f, mean, allow_pickle=False)
    fsync_dir(out.parent)
    return out.stat().st_size
