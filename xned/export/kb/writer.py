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
from xned.engine.kb import SEP
from xned.engine.normalize import fold
from xned.export.kb.keyed import KeyedBatch
from xned.export.kb.vectors import noting, shared_names
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


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(arr), allow_pickle=False)


def _permute_records(blob: np.ndarray, offsets: np.ndarray, order: np.ndarray, out: Path) -> np.ndarray:
    """Write variable-length records ``order[0], order[1], ...`` of ``blob`` to ``out``;
    returns the new offsets."""
    sizes = np.diff(offsets)[order]
    new_off = np.zeros(len(order) + 1, np.int64)
    np.cumsum(sizes, out=new_off[1:])
    with open(out, "wb") as f:
        step = 65536
        for i in range(0, len(order), step):
            idx = order[i : i + step]
            parts = [blob[offsets[j] : offsets[j + 1]] for j in idx.tolist()]
            if parts:
                f.write(np.concatenate(parts).tobytes())
    return new_off


def write_entities(
    root: Path,
    rows: Iterable[EntityRow],
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    *,
    batch: int = 8192,
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
            rec = f"{r.label}{SEP}{r.description}".encode()
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


def _extend(arr: array, values: np.ndarray) -> None:
    arr.frombytes(np.ascontiguousarray(values, np.dtype(arr.typecode)).tobytes())


def write_alias_table(root: Path, batches: Iterable[KeyedBatch]) -> int:
    """Stream batches of keyed candidates, in sorted key order, into one language's table;
    the arrays are then reordered by the key trie's ids."""
    root.mkdir(parents=True, exist_ok=True)
    keys_tmp = root / "keys.sorted.tmp"
    folds_tmp = root / "folds.tmp"
    cands = array("i")
    pris = array("f")
    sizes = array("i")
    lps = array("f")
    fold_at = array("q")  # sorted position of the key of each folded key
    n_sorted = 0
    with (
        open(keys_tmp, "w", encoding="utf-8", newline="\n") as kf,
        open(folds_tmp, "w", encoding="utf-8", newline="\n") as ff,
    ):
        for b in batches:
            if not b.keys:
                continue
            kf.write("\n".join(b.keys) + "\n")
            _extend(cands, b.cands)
            _extend(pris, b.priors)
            _extend(sizes, b.sizes)
            _extend(lps, b.link_prob)
            for i, key in enumerate(b.keys, n_sorted):
                fk = fold(key)
                if fk is not None:
                    ff.write(fk + "\n")
                    fold_at.append(i)
            n_sorted += len(b.keys)

    def read_lines(path: Path) -> Iterator[str]:
        with open(path, encoding="utf-8", newline="\n") as f:
            for line in f:
                yield line[:-1]

    trie = marisa_trie.Trie(read_lines(keys_tmp))
    trie.save(str(root / L.AliasTable.KEYS))
    n = len(trie)
    key_of_pos = np.fromiter((trie[k] for k in read_lines(keys_tmp)), np.int32, count=n_sorted)
    keys_tmp.unlink()
    sz = np.frombuffer(sizes, np.int32) if n else np.zeros(0, np.int32)
    pos_of_key, off_sorted, offsets = _key_order(key_of_pos, sz)
    c = np.frombuffer(cands, np.int32) if len(cands) else np.zeros(0, np.int32)
    p = np.frombuffer(pris, np.float32) if len(pris) else np.zeros(0, np.float32)
    _save(root / L.AliasTable.OFFSETS, offsets)
    _write_reordered(root / L.AliasTable.CANDS, c, pos_of_key, off_sorted)
    _write_reordered(root / L.AliasTable.PRIORS, p, pos_of_key, off_sorted)
    del c, p, cands, pris, off_sorted
    lp_arr = np.frombuffer(lps, np.float32) if n else np.zeros(0, np.float32)
    _save(root / L.AliasTable.LINK_PROB, lp_arr[pos_of_key])
    # accent-folded keys -> the key ids that fold to them
    ftrie = marisa_trie.Trie(read_lines(folds_tmp))
    ftrie.save(str(root / L.AliasTable.FOLD))
    fids = np.fromiter((ftrie[fk] for fk in read_lines(folds_tmp)), np.int64, count=len(fold_at))
    folds_tmp.unlink()
    at = np.frombuffer(fold_at, np.int64) if len(fold_at) else np.zeros(0, np.int64)
    _write_pairs(root / L.AliasTable.FOLD_OFFSETS, root / L.AliasTable.FOLD_TARGETS, fids, key_of_pos[at], len(ftrie))
    return n


def _write_pairs(offsets_path: Path, values_path: Path, rows: np.ndarray, values: np.ndarray, n_rows: int) -> None:
    """Ragged rows from ``(row, value)`` pairs (unique): int64 offsets by row id and each
    row's values in increasing order."""
    order = np.lexsort((values, rows))
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    _save(offsets_path, offsets)
    _save(values_path, values[order])


REORDER_CHUNK = 1 << 20  # keys per chunk when reordering rows by key id


def _key_order(key_of_pos: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows written in sorted-key order, to be reordered by trie key id: (sorted position
    of each key id, sorted-order row starts, new offsets by key id)."""
    n = len(key_of_pos)
    pos_of_key = np.empty(n, np.int32 if n < 2**31 else np.int64)
    pos_of_key[key_of_pos] = np.arange(n, dtype=pos_of_key.dtype)
    off_sorted = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=off_sorted[1:])
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(sizes[pos_of_key], out=offsets[1:])
    return pos_of_key, off_sorted, offsets


def _write_reordered(path: Path, flat: np.ndarray, pos_of_key: np.ndarray, off_sorted: np.ndarray) -> None:
    """``flat`` (rows in sorted-key order) written as an ``.npy`` with rows in key-id
    order, a chunk of keys at a time (no full-size index arrays in memory)."""
    total = int(off_sorted[-1])
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(flat.dtype), "fortran_order": False, "shape": (total,)}
        )
        for a in range(0, len(pos_of_key), REORDER_CHUNK):
            pk = pos_of_key[a : a + REORDER_CHUNK]
            starts, ends = off_sorted[pk], off_sorted[pk + 1]
            sizes = ends - starts
            if not sizes.sum():
                continue
            out_off = np.zeros(len(pk) + 1, np.int64)
            np.cumsum(sizes, out=out_off[1:])
            idx = np.repeat(starts - out_off[:-1], sizes) + np.arange(int(out_off[-1]))
            f.write(np.ascontiguousarray(flat[idx]).tobytes())


def write_key_index(root: Path, tables: dict[str, Path]) -> None:
    """Which languages' tables hold each key (and each accent-folded key), so a lookup in
    "every other language" touches only the tables that can answer. ``keys.marisa`` /
    ``fold.marisa`` with ``offsets.npy`` / ``fold_offsets.npy`` (int64 ranges) into
    ``langs.npy`` / ``fold_langs.npy`` (int16 positions in ``languages.json``).
    ``tables``: the written alias table directory of each language."""
    root.mkdir(parents=True, exist_ok=True)
    langs = sorted(tables)
    (root / L.KeyIndex.LANGUAGES).write_text(json.dumps(langs) + "\n", encoding="utf-8")
    for trie_name, offsets_name, langs_name, table_trie in (
        (L.KeyIndex.KEYS, L.KeyIndex.OFFSETS, L.KeyIndex.LANGS, L.AliasTable.KEYS),
        (L.KeyIndex.FOLD, L.KeyIndex.FOLD_OFFSETS, L.KeyIndex.FOLD_LANGS, L.AliasTable.FOLD),
    ):

        def table_keys(lang: str, table_trie: str = table_trie) -> Iterator[str]:
            t = marisa_trie.Trie()
            t.mmap(str(tables[lang] / table_trie))
            yield from t.iterkeys()

        trie = marisa_trie.Trie(k for lang in langs for k in table_keys(lang))
        trie.save(str(root / trie_name))
        ids, where = [], []
        for i, lang in enumerate(langs):
            ids.append(np.fromiter((trie[k] for k in table_keys(lang)), np.int64))
            where.append(np.full(len(ids[-1]), i, np.int16))
        _write_pairs(
            root / offsets_name,
            root / langs_name,
            np.concatenate(ids) if ids else np.zeros(0, np.int64),
            np.concatenate(where) if where else np.zeros(0, np.int16),
            len(trie),
        )


TableStream = Iterable[tuple[str, Iterable[KeyedBatch]]]


def write_kb(
    dest: Path,
    entities: Iterable[EntityRow],
    tables: Callable[[EntityIndex], TableStream],
    meta: dict,
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
) -> dict:
    """Write a complete KB directory at ``dest`` atomically (``dest.incomplete`` then
    rename). ``entities`` are streamed sorted by QID number; ``tables(index)`` then yields,
    per language in order, that table's keyed candidates (entity indices from ``index``).
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
        index = write_entities(tmp / L.KBDir.ENTITIES, entities, None if some else embed)
        counts = {}
        names = Spill("name-entities") if some else None
        try:  # the spill's temporary runs go on success and on error alike
            for lang, keyed in tables(index):
                if names is not None:
                    keyed = noting(keyed, names)
                n = write_alias_table(tmp / L.KBDir.ALIASES / lang, keyed)
                if n:
                    counts[lang] = n
                else:
                    shutil.rmtree(tmp / L.KBDir.ALIASES / lang)
            write_key_index(tmp / L.KBDir.KEY_INDEX, {lang: tmp / L.KBDir.ALIASES / lang for lang in counts})
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
            label, _, desc = rec.decode("utf-8").partition(SEP)
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
