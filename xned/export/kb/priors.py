"""Candidates and priors of one language's alias keys (the formula: ``kb.builder``),
computed a batch of keys at a time with numpy from the merged alias records
``lang<TAB>key<TAB>qnum<TAB>kind<TAB>value<TAB>value`` (sorted: by key, then QID number,
then kind); and the entities' popularity ranks (``Ranks``) that the formula uses.

Every sum runs in record order (``np.bincount`` adds sequentially) and every product in
the order the formula is written, so the priors are the float64 values a per-key Python
loop computes, bit for bit, before they are stored as float32.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xned.export.kb.keyed import KeyedBatch
from xned.export.kb.writer import EntityIndex
from xned.export.spill import merged_section, sections

BETA = 1.0
_ARRAYS = ("qnums", "key_of_pos", "popularity", "log_total")
BATCH_RECORDS = 1 << 16
_COUNT, _NAME, _OCCUR = 0, 1, 2
_KIND = {"C": _COUNT, "N": _NAME, "O": _OCCUR}


def entity_totals(lines: Iterable[str], index: EntityIndex) -> np.ndarray:
    """T(e): every language's anchor counts summed per entity position, from the count
    records ``lang<TAB>key<TAB>qnum<TAB>count`` (sorted as the alias records are)."""
    qns = array("q")
    counts = array("d")
    for line in lines:
        _lang, _key, qn, value = line.split("\t")
        qns.append(int(qn))
        counts.append(float(value))
    total = np.zeros(len(index), np.float64)
    if qns:
        pos = index.positions(np.frombuffer(qns, np.int64))
        ok = pos >= 0
        total += np.bincount(pos[ok], np.frombuffer(counts, np.float64)[ok], minlength=len(index))
    return total


@dataclass(frozen=True)
class AliasTables:
    """The alias tables of a build, as plain data a worker process can take: the sorted run
    files of the alias records and a directory with the entity index arrays and the totals
    T(e) as log1p (``save``). ``batches(lang)`` computes one language's keyed candidates."""

    runs: tuple[str, ...]
    arrays: str
    top_k: int

    @classmethod
    def save(cls, runs: list[Path], arrays: Path, index: EntityIndex, total: np.ndarray, top_k: int) -> AliasTables:
        arrays.mkdir(parents=True, exist_ok=True)
        values = (index.qnums, index.key_of_pos, index.popularity.astype(np.float64), np.log1p(total))
        for name, arr in zip(_ARRAYS, values, strict=True):
            np.save(arrays / f"{name}.npy", arr, allow_pickle=False)
        return cls(tuple(str(p) for p in runs), str(arrays), top_k)

    def langs(self) -> dict[str, int]:
        """Each language of the records and its bytes (the work of its table)."""
        return sections([Path(p) for p in self.runs])

    def batches(self, lang: str) -> Iterator[KeyedBatch]:
        qnums, key_of_pos, pop, log_total = (np.load(Path(self.arrays) / f"{n}.npy", mmap_mode="r") for n in _ARRAYS)
        index = EntityIndex(np.asarray(qnums), np.asarray(key_of_pos), pop, [], 0)
        lines = merged_section([Path(p) for p in self.runs], lang)
        for _, b in keyed_batches(lines, index, np.asarray(pop), np.asarray(log_total), self.top_k):
            yield b


def keyed_batches(
    lines: Iterable[str],
    index: EntityIndex,
    pop: np.ndarray,
    log_total: np.ndarray,
    top_k: int,
    batch: int = BATCH_RECORDS,
) -> Iterator[tuple[str, KeyedBatch]]:
    """Sorted alias records (six fields each) -> ``(language, batch)``: batches of keys with
    their top ``top_k`` candidates (entity indices) and priors, in language and key order;
    a key none of whose entities is in ``index`` is left out. Records are parsed a batch at
    a time (one ``split`` for the whole batch, columns by slicing). ``log_total``: log1p of
    the totals T(e) per entity position."""
    it = iter(lines)
    carry: list[str] = []
    while True:
        chunk = list(itertools.islice(it, batch))
        rows = carry + chunk if carry else chunk
        if not rows:
            return
        f = "\t".join(rows).split("\t")
        if len(f) != 6 * len(rows):
            raise ValueError("alias records must have six tab-separated fields")
        langs, keys = f[0::6], f[1::6]
        starts = [0, *(i for i in range(1, len(rows)) if keys[i] != keys[i - 1] or langs[i] != langs[i - 1])]
        n = len(rows)
        if len(chunk) == batch:  # more to come: the last key may go on in the next chunk
            if len(starts) == 1:
                carry = rows
                continue
            n = starts.pop()
            carry = rows[n:]
        else:
            carry = []
        yield from _compute(f, n, starts, index, pop, log_total, top_k)
        if not carry and len(chunk) < batch:
            return


def _compute(
    f: list[str],
    n: int,
    starts: list[int],
    index: EntityIndex,
    pop: np.ndarray,
    log_total: np.ndarray,
    top_k: int,
) -> Iterator[tuple[str, KeyedBatch]]:
    """Priors of the keys that start at ``starts`` in the first ``n`` records of the split
    fields ``f``, yielded per language."""
    nk = len(starts)
    first = np.zeros(n, np.int32)
    first[starts] = 1
    kid = np.cumsum(first) - 1
    qn = np.fromiter(map(int, f[2 : 6 * n : 6]), np.int64, n)
    kind = np.fromiter(map(_KIND.__getitem__, f[3 : 6 * n : 6]), np.int8, n)
    v1 = np.fromiter(map(float, f[4 : 6 * n : 6]), np.float64, n)
    v2 = np.fromiter(map(float, f[5 : 6 * n : 6]), np.float64, n)
    occ_rows = kind == _OCCUR
    occ = np.bincount(kid[occ_rows], v1[occ_rows], minlength=nk)
    linked = np.bincount(kid[occ_rows], v2[occ_rows], minlength=nk)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = np.where(occ > 0, np.minimum(1.0, linked / np.where(occ > 0, occ, 1.0)), np.nan)
    # (key, entity) pairs of the name and count records
    rows = ~occ_rows
    pk, pq, pkind, pv = kid[rows], qn[rows], kind[rows], v1[rows]
    new = np.ones(len(pk), bool)
    new[1:] = (pk[1:] != pk[:-1]) | (pq[1:] != pq[:-1])
    pair = np.cumsum(new) - 1
    n_pairs = int(new.sum())
    pair_key, pair_qn = pk[new], pq[new]
    names = pkind == _NAME
    weight = np.zeros(n_pairs, np.float64)  # kind(m, e): the largest name weight
    np.maximum.at(weight, pair[names], pv[names])
    counts = pkind == _COUNT
    native = np.bincount(pair[counts], pv[counts], minlength=n_pairs)
    named = np.bincount(pair[names], minlength=n_pairs) > 0
    weight[~named] = 0.5  # an anchor without a name record: weighed as an alias
    pos = index.positions(pair_qn) if n_pairs else np.zeros(0, np.int64)
    ok = pos >= 0
    pair_key, pair_qn, weight, native, pos = pair_key[ok], pair_qn[ok], weight[ok], native[ok], pos[ok]
    q_raw = weight * (1.0 + log_total[pos]) * (0.25 + pop[pos])
    z = np.bincount(pair_key, q_raw, minlength=nk)
    n_native = np.bincount(pair_key, native, minlength=nk)
    with np.errstate(divide="ignore", invalid="ignore"):
        pri = (native + BETA * q_raw / z[pair_key]) / (n_native[pair_key] + BETA)
    order = np.lexsort((pair_qn, -pri, pair_key))
    sk = pair_key[order]
    head = np.ones(len(sk), bool)
    head[1:] = sk[1:] != sk[:-1]
    start = np.maximum.accumulate(np.where(head, np.arange(len(sk)), 0))
    keep = order[np.arange(len(sk)) - start < top_k]
    sizes = np.bincount(pair_key[keep], minlength=nk)
    cands = index.key_of_pos[pos[keep]].astype(np.int32)
    priors = pri[keep]
    offsets = np.zeros(nk + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    langs = f[0 : 6 * n : 6]
    bounds = [i for i in range(1, nk) if langs[starts[i]] != langs[starts[i - 1]]]
    for a, b in zip([0, *bounds], [*bounds, nk], strict=True):
        has = sizes[a:b] > 0
        if not has.any():
            continue
        keys = [f[6 * starts[a + g] + 1] for g in np.flatnonzero(has).tolist()]
        yield (
            langs[starts[a]],
            KeyedBatch(
                keys,
                sizes[a:b][has].astype(np.int32),
                cands[offsets[a] : offsets[b]],
                priors[offsets[a] : offsets[b]],
                lp[a:b][has],
            ),
        )


class Ranks:
    """Popularity with per-source rank normalization: each source's values become
    percentiles in (0, 1]; an entity keeps its best."""

    def __init__(self) -> None:
        self.by_source: dict[str, tuple[array, array]] = {}

    def add(self, pos: int, pops: dict[str, float]) -> None:
        for src, val in pops.items():
            slot = self.by_source.setdefault(src, (array("q"), array("d")))
            slot[0].append(pos)
            slot[1].append(val)

    def popularity(self, n: int) -> np.ndarray:
        pop = np.zeros(n, np.float64)
        for _src, (pos_a, val_a) in sorted(self.by_source.items()):
            arr = np.frombuffer(val_a, np.float64)
            order = arr.argsort(kind="stable")
            ranks = np.empty(len(arr), np.float64)
            _, first, counts = np.unique(arr[order], return_index=True, return_counts=True)
            ranks[order] = np.repeat(first + (counts - 1) / 2.0 + 1.0, counts)
            where = np.frombuffer(pos_a, np.int64)
            np.maximum.at(pop, where, ranks / len(arr))
        return pop
