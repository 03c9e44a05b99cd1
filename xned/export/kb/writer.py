"""Write the bundle KB arrays (see ``xned/engine/kb.py`` for the layout), atomically and
deterministically: the same input gives byte-identical files."""

from __future__ import annotations

import json
import os
import shutil
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.stems import STEM_LANGS
from xned.export.kb.stems import write_all_stems
from xned.export.kb.tables import TableSource, write_key_index, write_tables
from xned.export.kb.tables import save_npy as _save
from xned.export.kb.vectors import shared_names
from xned.export.spill import Spill
from xned.fsutil import replace_dir


@dataclass
class EntityRow:
    qid: str
    type: str = ""
    label: str = ""
    description: str = ""
    popularity: float = 0.0


@dataclass
class EntityIndex:
    """Where each written entity went: ``qnums`` (sorted QID numbers), ``key_of_pos`` (the
    entity index, i.e. the QID trie key id, of each sorted position) and the sorted-order
    popularity used by the priors."""

    qnums: np.ndarray
    key_of_pos: np.ndarray
    popularity: np.ndarray
    types: list[str]
    vector_dim: int

    def __len__(self) -> int:
        return len(self.qnums)

    def positions(self, qnums: np.ndarray) -> np.ndarray:
        """Sorted positions of QID numbers (-1 where absent)."""
        if not len(self.qnums):
            return np.full(len(qnums), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.qnums, qnums), len(self.qnums) - 1)
        return np.where(self.qnums[pos] == qnums, pos, -1)


def _permute_records(blob: np.ndarray, offsets: np.ndarray, order: np.ndarray, out: Path) -> np.ndarray:
    """Write variable-length records ``order[0], order[1], ...`` of ``blob`` to ``out``;
    returns the new offsets. A chunk of records is gathered with one index array."""
    sizes = np.diff(offsets)[order]
    new_off = np.zeros(len(order) + 1, np.int64)
    np.cumsum(sizes, out=new_off[1:])
    with open(out, "wb") as f:
        step = 65536
        for i in range(0, len(order), step):
            idx = order[i : i + step]
            starts, lens = offsets[idx], sizes[i : i + step]
            if not lens.sum():
                continue
            at = np.repeat(starts - (new_off[i : i + len(idx)] - new_off[i]), lens) + np.arange(int(lens.sum()))
            f.write(np.asarray(blob[at]).tobytes())
    return new_off


def write_entities(
    root: Path,
    rows: Iterable[EntityRow],
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    *,
    batch: int = 8192,
    popularity: Callable[[int], np.ndarray] | None = None,
) -> EntityIndex:
    """Stream ``rows`` (sorted by QID number, unique) into the entity store. Memory: a few
    bytes per entity plus one batch of rows; text and vectors go through temporary files
    and are then reordered by QID trie key id (the entity index)."""
    root.mkdir(parents=True, exist_ok=True)
    qnums = array("q")
    type_ids = array("i")
    pops = array("f")
    offsets = array("q", [0])
    type_ix: dict[str, int] = {}
    dim = 0
    text_tmp = root / "text.sorted.tmp"
    vec_tmp = root / "vectors.sorted.tmp"
    pending: list[EntityRow] = []
    with open(text_tmp, "wb") as tf, open(vec_tmp, "wb") as vf:
        size = 0

        def flush() -> None:
            nonlocal dim
            if embed is not None and pending:
                v = np.ascontiguousarray(embed(pending), np.float32)
                dim = int(v.shape[1])
                vf.write(v.tobytes())
            pending.clear()

        for r in rows:
            qnums.append(int(r.qid[1:]))
            type_ids.append(type_ix.setdefault(r.type, len(type_ix)))
            pops.append(r.popularity)
            rec = f"{r.label}{L.FIELD_SEP}{r.description}".encode()
            tf.write(rec)
            size += len(rec)
            offsets.append(size)
            pending.append(r)
            if len(pending) >= batch:
                flush()
        flush()
    n = len(qnums)
    q = np.frombuffer(qnums, np.int64) if n else np.zeros(0, np.int64)

    def qids() -> Iterator[str]:  # chunked, so no list of N Python ints
        for a in range(0, n, 1 << 16):
            for x in q[a : a + (1 << 16)].tolist():
                yield f"Q{x}"

    trie = marisa_trie.Trie(qids())
    trie.save(str(root / L.Entities.QIDS))
    key_of_pos = np.fromiter((trie[k] for k in qids()), np.int32, count=n)
    pos_of_key = np.empty(n, np.int32)
    pos_of_key[key_of_pos] = np.arange(n, dtype=np.int32)
    blob = np.memmap(text_tmp, np.uint8, mode="r") if os.path.getsize(text_tmp) else np.zeros(0, np.uint8)
    new_off = _permute_records(blob, np.frombuffer(offsets, np.int64), pos_of_key, root / L.Entities.TEXT)
    del blob
    text_tmp.unlink()
    _save(root / L.Entities.TEXT_OFFSETS, new_off)
    types = sorted(type_ix)
    remap = np.zeros(max(len(type_ix), 1), np.int32)
    for name, i in type_ix.items():
        remap[i] = types.index(name)
    tids = np.frombuffer(type_ids, np.int32) if n else np.zeros(0, np.int32)
    _save(root / L.Entities.TYPE, remap[tids][pos_of_key] if n else np.zeros(0, np.int32))
    if popularity is not None:  # known only once every row was read
        pop_sorted = np.asarray(popularity(n), np.float64).astype(np.float32)
    else:
        pop_sorted = np.frombuffer(pops, np.float32).copy() if n else np.zeros(0, np.float32)
    _save(root / L.Entities.POPULARITY, pop_sorted[pos_of_key])
    if embed is not None and dim:
        v = np.memmap(vec_tmp, np.float32, mode="r", shape=(n, dim))
        q8 = np.lib.format.open_memmap(root / L.Entities.VECTORS, mode="w+", dtype=np.int8, shape=(n, dim))  # on disk
        scales = np.empty(n, np.float32)
        for i in range(0, n, 65536):
            idx = pos_of_key[i : i + 65536]
            block = np.asarray(v[idx], np.float32)
            sc = np.maximum(np.abs(block).max(axis=1), 1e-12) / 127.0
            q8[i : i + len(idx)] = np.clip(np.rint(block / sc[:, None]), -127, 127).astype(np.int8)
            scales[i : i + len(idx)] = sc
        del v
        q8.flush()
        del q8
        _save(root / L.Entities.VECTOR_SCALES, scales)
    vec_tmp.unlink()
    return EntityIndex(q, key_of_pos, pop_sorted, types, dim)


def write_kb(
    dest: Path,
    entities: Iterable[EntityRow],
    tables: Callable[[EntityIndex], TableSource],
    meta: dict,
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    popularity: Callable[[int], np.ndarray] | None = None,
    workers: int = 1,
) -> dict:
    """Write a complete KB directory at ``dest`` atomically (``dest.incomplete`` then
    rename). ``entities`` are streamed sorted by QID number (``popularity(n)``, when given,
    replaces their popularity once all ``n`` were read); ``tables(index)`` then gives the
    alias tables (``write_tables``, by ``workers`` processes; entity indices from ``index``)
    with the stem keys of the build options' ``stem_langs`` (default ``STEM_LANGS``; ``kb.stems``).
    An ``embed`` made with ``shared_only`` (``kb.embed.EntityEmbedder``, ``kb build
    --vectors ambiguous``) embeds only the entities that share a name with another, once the
    tables are written (``kb.vectors.shared_names``, ``embed_some``).
    Returns the metadata written to ``meta.json``. A ``build`` entry of ``meta`` (source
    paths and modification times, for ``xned kb compact``) goes to ``build.json`` so every
    other file depends only on the content of the sources."""
    meta = dict(meta)
    build = meta.pop("build", None)
    tmp = dest.with_name(dest.name + ".incomplete")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    some = embed is not None and getattr(embed, "shared_only", False)
    try:
        index = write_entities(tmp / L.KBDir.ENTITIES, entities, None if some else embed, popularity=popularity)
        names = Spill("name-entities") if some else None
        try:  # the spill's temporary runs go on success and on error alike
            counts = write_tables(tables(index), tmp / L.KBDir.ALIASES, workers, names)
            tables_at = {lang: tmp / L.KBDir.ALIASES / lang for lang in counts}
            write_key_index(tmp / L.KBDir.KEY_INDEX, tables_at, counts, workers)
            stem_langs = ((build or {}).get("options") or {}).get("stem_langs")
            write_all_stems(tmp / L.KBDir.ALIASES, STEM_LANGS if stem_langs is None else stem_langs)
            if names is not None and embed is not None:
                mask = shared_names(names, len(index))
                index.vector_dim = embed_some(tmp / L.KBDir.ENTITIES, index, mask, embed)
                meta = {**meta, "vectors": {"rule": "ambiguous", "entities": int(mask.sum())}}
        finally:
            if names is not None:
                names.close()
        meta = {
            **meta,
            "entities": len(index),
            "types": index.types,
            "languages": counts,
            "vector_dim": index.vector_dim,
        }
        (tmp / L.KBDir.META).write_text(
            json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if build is not None:
            (tmp / L.KBDir.BUILD).write_text(
                json.dumps(build, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def embed_some(root: Path, index: EntityIndex, mask: np.ndarray, embed: Callable[[list[EntityRow]], np.ndarray]) -> int:
    """Embed the entities of ``mask`` from the written store: ``vectors.npy`` int8 [M, D] and
    ``vector_scales.npy`` [M] for those M only, ``vector_rows.npy`` int32 [N] (the row of
    each entity, -1 for none). Returns the dimension (0 when nothing was embedded)."""
    text = np.memmap(root / L.Entities.TEXT, np.uint8, mode="r") if (root / L.Entities.TEXT).stat().st_size else None
    offsets = np.load(root / L.Entities.TEXT_OFFSETS, mmap_mode="r")
    types = np.load(root / L.Entities.TYPE, mmap_mode="r")
    trie = marisa_trie.Trie()
    trie.load(str(root / L.Entities.QIDS))
    which = np.flatnonzero(mask)
    q8: Any = None
    scales = np.zeros(len(which), np.float32)
    for a in range(0, len(which), 8192):
        part = which[a : a + 8192]
        rows = []
        for i in part.tolist():
            rec = b"" if text is None else bytes(text[int(offsets[i]) : int(offsets[i + 1])])
            label, _, desc = rec.decode("utf-8").partition(L.FIELD_SEP)
            rows.append(EntityRow(trie.restore_key(i), index.types[int(types[i])], label, desc))
        v = np.asarray(embed(rows), np.float32)
        if q8 is None:  # on disk, not in memory
            shape = (len(which), v.shape[1])
            q8 = np.lib.format.open_memmap(root / L.Entities.VECTORS, mode="w+", dtype=np.int8, shape=shape)
        sc = np.maximum(np.abs(v).max(axis=1), 1e-12) / 127.0
        q8[a : a + len(part)] = np.clip(np.rint(v / sc[:, None]), -127, 127).astype(np.int8)
        scales[a : a + len(part)] = sc
    del text
    if q8 is None:
        return 0
    dim = int(q8.shape[1])
    q8.flush()
    del q8
    _save(root / L.Entities.VECTOR_SCALES, scales)
    row_of = np.full(len(mask), -1, np.int32)
    row_of[which] = np.arange(len(which), dtype=np.int32)
    _save(root / L.Entities.VECTOR_ROWS, row_of)
    return dim
