"""Build the name index of a bundle (``kb/names.usearch`` + ``kb/names_mean.npy``, see
``xned.engine.names``): every base entity's label embedded alone by the bundle's encoder
("query: " prefix, the prefix mention strings get at run time), centred on the labels' mean,
in a usearch HNSW graph (cosine, int8) keyed by entity index. Entities without a label are
left out. Built by ``xned kb build --names`` or ``xned kb index --names``; label
vectors go through the build's vector cache (keyed apart from entity passages).

Measured on the evaluation-protocol KB (161,892 entities): see the README ("Name
retrieval").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.engine.encoder import Encoder
from xned.engine.entities import EntityStore
from xned.export.kb.dense import write_index
from xned.export.kb.embed import VectorCache
from xned.logs import Log, silent

BATCH = 4096  # labels per encoder call (length-sorted inside, token-budget batches)
KEY_PREFIX = "name\x00"  # vector-cache keys of labels, apart from entity passages


def label_vectors(
    labels: list[str], encoder_dir: Path, *, threads: int | None = None, cache: Path | None = None, log: Log = silent
) -> np.ndarray:
    """float32 ``[n, dim]`` unit vectors of ``labels`` (each embedded alone as a query)."""

    enc = Encoder(encoder_dir, threads=threads)
    enc.batch_tokens = 2048
    vc = VectorCache(cache, encoder_dir) if cache is not None else None
    out = np.zeros((len(labels), enc.dim), np.float32)
    for start in range(0, len(labels), BATCH):
        part = labels[start : start + BATCH]
        keys = [VectorCache.key(KEY_PREFIX + t) for t in part]
        known = vc.get_many(keys, enc.dim) if vc is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in known]
        fresh = enc.embed_texts([part[i] for i in todo], "query") if todo else np.zeros((0, enc.dim), np.float32)
        if vc is not None and todo:
            vc.put_many([(keys[i], v.astype(np.float16)) for i, v in zip(todo, fresh, strict=True)])
        for i, k in enumerate(keys):
            if k in known:
                out[start + i] = known[k]
        # through the cache's float16 either way, so a cached rebuild gives the same index
        out[start + np.asarray(todo, np.int64)] = fresh.astype(np.float16) if vc is not None else fresh
        log(f"name index: {min(start + BATCH, len(labels)):,}/{len(labels):,} labels embedded")
    if vc is not None:
        vc.save()
    return out


def build_name_index(
    kb_root: Path,
    encoder_dir: Path,
    *,
    threads: int | None = None,
    cache: Path | None = None,
    log: Log = silent,
) -> dict[str, Any]:
    """Write ``kb_root/names.usearch`` and ``names_mean.npy`` from the base entities' labels."""
    t0 = time.perf_counter()
    store = EntityStore(Path(kb_root) / L.KBDir.ENTITIES)
    ids, labels = [], []
    for i in range(len(store)):
        label = store.record(i)[0].strip()
        if label:
            ids.append(i)
            labels.append(label)
    vectors = label_vectors(labels, encoder_dir, threads=threads, cache=cache, log=log)
    mean = (vectors.mean(axis=0) if len(vectors) else np.zeros(vectors.shape[1])).astype(np.float32)
    keys = np.asarray(ids, np.int64)
    size = write_index(
        Path(kb_root), L.KBDir.NAMES_INDEX, L.KBDir.NAMES_MEAN, keys, vectors, mean, log=log, what="name index",
        unit="labels indexed",
    )  # fmt: skip
    return {
        "labels": len(keys),
        "entities": len(store),
        "bytes": size,
        "seconds": round(time.perf_counter() - t0, 1),
    }
