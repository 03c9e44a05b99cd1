"""Write the alias tables of a KB (see ``xned/engine/kb.py`` for the layout) and the key
index over them: one language's table from its keyed candidates (``write_alias_table``),
every table, by worker processes where the work is large (``write_tables``), and which
tables hold each key (``write_key_index``)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from array import array
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.normalize import fold
from xned.export.kb.keyed import KeyedBatch
from xned.export.kb.vectors import noting
from xned.export.spill import Spill


def save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(arr), allow_pickle=False)


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

    trie = marisa_trie.Trie(read_lines(keys_tmp))
    trie.save(str(root / L.AliasTable.KEYS))
    n = len(trie)
    key_of_pos = np.fromiter((trie[k] for k in read_lines(keys_tmp)), np.int32, count=n_sorted)
    keys_tmp.unlink()
    sz = np.frombuffer(sizes, np.int32) if n else np.zeros(0, np.int32)
    pos_of_key, off_sorted, offsets = _key_order(key_of_pos, sz)
    c = np.frombuffer(cands, np.int32) if len(cands) else np.zeros(0, np.int32)
    p = np.frombuffer(pris, np.float32) if len(pris) else np.zeros(0, np.float32)
    save_npy(root / L.AliasTable.OFFSETS, offsets)
    _write_reordered(root / L.AliasTable.CANDS, c, pos_of_key, off_sorted)
    _write_reordered(root / L.AliasTable.PRIORS, p, pos_of_key, off_sorted)
    del c, p, cands, pris, off_sorted
    lp_arr = np.frombuffer(lps, np.float32) if n else np.zeros(0, np.float32)
    save_npy(root / L.AliasTable.LINK_PROB, lp_arr[pos_of_key])
    # accent-folded keys -> the key ids that fold to them
    at = np.frombuffer(fold_at, np.int64) if len(fold_at) else np.zeros(0, np.int64)
    write_key_map(
        root, folds_tmp, key_of_pos[at], (L.AliasTable.FOLD, L.AliasTable.FOLD_OFFSETS, L.AliasTable.FOLD_TARGETS)
    )
    return n


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a temporary key file, without their newline."""
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            yield line[:-1]


def write_key_map(root: Path, lines: Path, key_ids: np.ndarray, names: tuple[str, str, str]) -> int:
    """Derived keys of a table (one per line of the temporary file ``lines``, removed here)
    -> the ids of the keys they come from (``key_ids``, in the same order): a trie of the
    derived keys and each one's key ids (``_write_pairs``), under ``root`` as ``names``
    (trie, offsets, targets). The table's accent-folded keys and its stem keys
    (``kb.stems``). Returns the number of derived keys."""
    trie_name, offsets_name, targets_name = names
    trie = marisa_trie.Trie(read_lines(lines))
    trie.save(str(root / trie_name))
    rows = np.fromiter((trie[k] for k in read_lines(lines)), np.int64, count=len(key_ids))
    lines.unlink()
    _write_pairs(root / offsets_name, root / targets_name, rows, key_ids, len(trie))
    return len(trie)


def _write_pairs(offsets_path: Path, values_path: Path, rows: np.ndarray, values: np.ndarray, n_rows: int) -> None:
    """Ragged rows from ``(row, value)`` pairs (unique): int64 offsets by row id and each
    row's values in increasing order."""
    order = np.lexsort((values, rows))
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    save_npy(offsets_path, offsets)
    save_npy(values_path, values[order])


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


PARALLEL_INDEX_KEYS = 1_000_000  # fewer table keys than this: the key index ids are found in this process


def _trie_keys(path: Path) -> Iterator[str]:
    t = marisa_trie.Trie()
    t.mmap(str(path))
    yield from t.iterkeys()


def _ids_in(index_trie: str, tables: list[str], table_trie: str) -> list[np.ndarray]:
    """The id in the key index trie of every key of each table (in the table trie's order):
    one worker's share of ``write_key_index``."""
    trie = marisa_trie.Trie()
    trie.mmap(index_trie)
    return [np.fromiter((trie[k] for k in _trie_keys(Path(t) / table_trie)), np.int64) for t in tables]


def write_key_index(root: Path, tables: dict[str, Path], sizes: dict[str, int] | None = None, workers: int = 1) -> None:
    """Which languages' tables hold each key (and each accent-folded key), so a lookup in
    "every other language" touches only the tables that can answer. ``keys.marisa`` /
    ``fold.marisa`` with ``offsets.npy`` / ``fold_offsets.npy`` (int64 ranges) into
    ``langs.npy`` / ``fold_langs.npy`` (int16 positions in ``languages.json``).
    ``tables``: the written alias table directory of each language; ``sizes`` their key
    counts, by which ``workers`` processes share the lookups of large indexes."""
    root.mkdir(parents=True, exist_ok=True)
    langs = sorted(tables)
    (root / L.KeyIndex.LANGUAGES).write_text(json.dumps(langs) + "\n", encoding="utf-8")
    kinds = (
        (L.KeyIndex.KEYS, L.KeyIndex.OFFSETS, L.KeyIndex.LANGS, L.AliasTable.KEYS),
        (L.KeyIndex.FOLD, L.KeyIndex.FOLD_OFFSETS, L.KeyIndex.FOLD_LANGS, L.AliasTable.FOLD),
    )
    n_keys = {}
    for trie_name, _, _, table_trie in kinds:
        trie = marisa_trie.Trie(k for lang in langs for k in _trie_keys(tables[lang] / table_trie))
        trie.save(str(root / trie_name))
        n_keys[trie_name] = len(trie)
    sizes = sizes or {lang: 1 for lang in langs}
    parallel = workers > 1 and len(langs) > 1 and sum(sizes.values()) >= PARALLEL_INDEX_KEYS
    groups = _balance({lang: sizes.get(lang, 1) for lang in langs}, workers if parallel else 1)
    jobs = [
        (str(root / trie_name), [str(tables[lang]) for lang in group], table_trie)
        for trie_name, _, _, table_trie in kinds
        for group in groups
    ]
    if parallel:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(groups), mp_context=ctx) as pool:
            results = list(pool.map(_ids_in, *zip(*jobs, strict=True)))
    else:
        results = [_ids_in(*job) for job in jobs]
    for k, (trie_name, offsets_name, langs_name, _) in enumerate(kinds):
        found = {
            lang: ids
            for group, part in zip(groups, results[k * len(groups) : (k + 1) * len(groups)], strict=True)
            for lang, ids in zip(group, part, strict=True)
        }
        ids = [found[lang] for lang in langs]
        where = [np.full(len(found[lang]), i, np.int16) for i, lang in enumerate(langs)]
        _write_pairs(
            root / offsets_name,
            root / langs_name,
            np.concatenate(ids) if ids else np.zeros(0, np.int64),
            np.concatenate(where) if where else np.zeros(0, np.int16),
            n_keys[trie_name],
        )


class TableSource(Protocol):
    """The alias tables to write (``kb.priors.AliasTables``): picklable, so a worker process
    can write some of them."""

    def langs(self) -> dict[str, int]:
        """Every language with its amount of work (bytes of records)."""
        ...

    def batches(self, lang: str) -> Iterable[KeyedBatch]:
        """One language's keyed candidates, in sorted key order."""
        ...


PARALLEL_TABLE_BYTES = 16 * 1024 * 1024  # less than this: tables are written in this process


def _write_tables(source: TableSource, langs: list[str], root: str, names: Spill | None = None) -> dict[str, int]:
    """Write the tables of ``langs`` under ``root``: their key counts (an empty table is
    removed); ``names`` notes the (name, entity) pairs (``kb.vectors``). The unit of work of
    a worker process."""
    counts = {}
    for lang in langs:
        batches = source.batches(lang)
        n = write_alias_table(Path(root) / lang, noting(batches, names) if names is not None else batches)
        if n:
            counts[lang] = n
        else:
            shutil.rmtree(Path(root) / lang)
    return counts


def _balance(sizes: dict[str, int], parts: int) -> list[list[str]]:
    """Languages in ``parts`` groups of about equal work (largest first, each to the lightest group)."""
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(parts)]
    for lang, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        i = min(range(parts), key=lambda j: groups[j][0])
        groups[i] = (groups[i][0] + size, [*groups[i][1], lang])
    return [g for _, g in groups if g]


def write_tables(source: TableSource, root: Path, workers: int = 1, names: Spill | None = None) -> dict[str, int]:
    """Every alias table of ``source`` under ``root``, by ``workers`` processes when the work
    is large enough (the tables do not depend on who writes them); ``names`` notes the
    (name, entity) pairs (``kb.vectors``), in this process. Returns key counts by language."""
    sizes = source.langs()
    if names is not None or workers <= 1 or len(sizes) < 2 or sum(sizes.values()) < PARALLEL_TABLE_BYTES:
        return _write_tables(source, list(sizes), str(root), names)
    groups = _balance(sizes, workers)
    counts = {}
    # spawn: a forked child inherits the parent's thread pools (ONNX Runtime) in any state
    with ProcessPoolExecutor(max_workers=len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
        for part in pool.map(_write_tables, [source] * len(groups), groups, [str(root)] * len(groups)):
            counts.update(part)
    return dict(sorted(counts.items()))
