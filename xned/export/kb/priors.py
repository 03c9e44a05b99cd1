"""Candidates and priors of one language's alias keys (the formula: ``kb.builder``),
computed a batch of keys at a time with numpy from the merged alias records
``lang<TAB>key<TAB>qnum<TAB>kind<TAB>value(s)`` (sorted: by key, then QID number, then kind).

Every sum runs in record order (``np.bincount`` adds sequentially) and every product in
the order the formula is written, so the priors are the float64 values a per-key Python
loop computes, bit for bit, before they are stored as float32.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

import numpy as np

from xned.export.kb.keyed import KeyedBatch
from xned.export.kb.writer import EntityIndex

BETA = 1.0
BATCH_RECORDS = 1 << 16
_COUNT, _NAME, _OCCUR = 0, 1, 2
_KIND = {"C": _COUNT, "N": _NAME, "O": _OCCUR}


def entity_totals(lines: Iterable[str], index: EntityIndex) -> np.ndarray:
    """T(e): every language's anchor counts (``C`` records) summed per entity position."""
    qns = array("q")
    counts = array("d")
    for line in lines:
        if "\tC\t" in line:  # keys and languages hold no tab, so this is the kind field
            _lang, _key, qn, _kind, value = line.split("\t")
            qns.append(int(qn))
            counts.append(float(value))
    total = np.zeros(len(index), np.float64)
    if qns:
        pos = index.positions(np.frombuffer(qns, np.int64))
        ok = pos >= 0
        total += np.bincount(pos[ok], np.frombuffer(counts, np.float64)[ok], minlength=len(index))
    return total


def keyed_batches(
    lines: Iterable[str],
    index: EntityIndex,
    pop: np.ndarray,
    total: np.ndarray,
    top_k: int,
    batch: int = BATCH_RECORDS,
) -> Iterator[KeyedBatch]:
    """The records of one language (sorted) -> batches of keys with their top ``top_k``
    candidates (entity indices) and priors, in key order; a key none of whose entities is
    in ``index`` is left out."""
    log_total = np.log1p(total)
    cols = _Columns()
    prev = None
    for line in lines:
        f = line.split("\t")
        key = f[1]
        if key != prev:
            if len(cols.qn) >= batch:
                out = cols.compute(index, pop, log_total, top_k)
                if out.keys:
                    yield out
                cols = _Columns()
            cols.keys.append(key)
            prev = key
        cols.add(f)
    out = cols.compute(index, pop, log_total, top_k)
    if out.keys:
        yield out


class _Columns:
    """One batch of records as columns (whole keys only)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.kid = array("i")
        self.qn = array("q")
        self.kind = array("b")
        self.v1 = array("d")
        self.v2 = array("d")

    def add(self, f: list[str]) -> None:
        self.kid.append(len(self.keys) - 1)
        self.qn.append(int(f[2]))
        kind = _KIND[f[3]]
        self.kind.append(kind)
        self.v1.append(float(f[4]))
        self.v2.append(float(f[5]) if kind == _OCCUR else 0.0)

    def compute(self, index: EntityIndex, pop: np.ndarray, log_total: np.ndarray, top_k: int) -> KeyedBatch:
        nk = len(self.keys)
        kid = np.frombuffer(self.kid, np.int32) if nk else np.zeros(0, np.int32)
        qn = np.frombuffer(self.qn, np.int64) if nk else np.zeros(0, np.int64)
        kind = np.frombuffer(self.kind, np.int8) if nk else np.zeros(0, np.int8)
        v1 = np.frombuffer(self.v1, np.float64) if nk else np.zeros(0, np.float64)
        v2 = np.frombuffer(self.v2, np.float64) if nk else np.zeros(0, np.float64)
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
        first = np.ones(len(sk), bool)
        first[1:] = sk[1:] != sk[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(len(sk)), 0))
        keep = order[np.arange(len(sk)) - start < top_k]
        sizes = np.bincount(pair_key[keep], minlength=nk)
        has = sizes > 0
        return KeyedBatch(
            [k for k, h in zip(self.keys, has.tolist(), strict=True) if h],
            sizes[has].astype(np.int32),
            index.key_of_pos[pos[keep]].astype(np.int32),
            pri[keep],
            lp[has],
        )
