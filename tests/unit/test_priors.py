"""The batched priors of a KB build equal the formula of ``kb.builder`` computed one key at a
time in plain Python, bit for bit, whatever the batch size."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from xned.export.kb.priors import entity_totals, keyed_batches
from xned.export.kb.writer import EntityIndex


def _index(qnums: list[int], rng: random.Random) -> EntityIndex:
    q = np.array(sorted(qnums), np.int64)
    key_of_pos = np.array(rng.sample(range(len(q)), len(q)), np.int32)
    pop = np.array([rng.random() for _ in q], np.float32)
    return EntityIndex(q, key_of_pos, pop, [""], 0)


def _records(rng: random.Random, known: list[int], n_keys: int) -> list[str]:
    """Sorted alias records as ``KBBuilder`` spills them: names (N), anchor counts (C) and
    text occurrences (O), some of entities the index does not hold."""
    out = []
    for k in range(n_keys):
        lang = rng.choice(["de", "en", "ja"])
        key = f"key {k:04d}"
        for _ in range(rng.randint(1, 6)):
            qn = rng.choice(known) if rng.random() < 0.85 else 999_000 + rng.randint(0, 9)
            kind = rng.choice("NNNC")
            value = rng.choice(["1.0", "0.5", "0.1"]) if kind == "N" else repr(float(rng.randint(1, 40)))
            out.append(f"{lang}\t{key}\t{qn:010d}\t{kind}\t{value}\t0")
        if rng.random() < 0.3:
            out.append(f"{lang}\t{key}\t{0:010d}\tO\t{float(rng.randint(1, 50))!r}\t{float(rng.randint(0, 60))!r}")
    return sorted(out)


def _reference(records: list[str], index: EntityIndex, top_k: int) -> dict[tuple[str, str], tuple]:
    """The formula one key at a time: {(lang, key): (entity indices, priors, link prob)}."""
    pos_of = {int(q): i for i, q in enumerate(index.qnums)}
    total = [0.0] * len(index)
    for line in records:
        f = line.split("\t")
        if f[3] == "C" and int(f[2]) in pos_of:
            total[pos_of[int(f[2])]] += float(f[4])
    pop = index.popularity.astype(np.float64)
    groups: dict[tuple[str, str], list[list[str]]] = {}
    for line in records:
        f = line.split("\t")
        groups.setdefault((f[0], f[1]), []).append(f[2:])
    out = {}
    for lk, rows in groups.items():
        kinds: dict[int, float] = {}
        native: dict[int, float] = {}
        occ = linked = 0.0
        for r in rows:
            qn = int(r[0])
            if r[1] == "N":
                kinds[qn] = max(kinds.get(qn, 0.0), float(r[2]))
            elif r[1] == "C":
                native[qn] = native.get(qn, 0.0) + float(r[2])
            else:
                occ += float(r[2])
                linked += float(r[3])
        for qn in native:
            kinds.setdefault(qn, 0.5)
        q_raw = {
            q: w * (1.0 + math.log1p(total[pos_of[q]])) * (0.25 + float(pop[pos_of[q]]))
            for q, w in sorted(kinds.items())
            if q in pos_of
        }
        if not q_raw:
            continue
        z = sum(q_raw.values())
        n_native = sum(c for q, c in native.items() if q in q_raw)
        pri = {q: (native.get(q, 0.0) + v / z) / (n_native + 1.0) for q, v in q_raw.items()}
        ranked = sorted(pri.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        lp = min(1.0, linked / occ) if occ > 0 else float("nan")
        out[lk] = ([int(index.key_of_pos[pos_of[q]]) for q, _ in ranked], [p for _, p in ranked], lp)
    return out


@pytest.mark.parametrize(("seed", "batch", "top_k"), [(0, 1, 30), (1, 7, 2), (2, 10_000, 3)])
def test_batched_priors_are_the_per_key_formula(seed, batch, top_k):
    rng = random.Random(seed)
    known = rng.sample(range(1, 5000), 40)
    index = _index(known, rng)
    records = _records(rng, known, 300)
    counts = [r.replace("\tC\t", "\t")[:-2] for r in records if "\tC\t" in r]  # as KBBuilder spills them
    total = entity_totals(counts, index)
    want = _reference(records, index, top_k)
    got = {}
    langs = []
    for lang, b in keyed_batches(
        records, index, index.popularity.astype(np.float64), np.log1p(total), top_k, batch=batch
    ):
        langs.append(lang)
        ends = np.cumsum(b.sizes).tolist()
        for i, key in enumerate(b.keys):
            a = ends[i - 1] if i else 0
            got[(lang, key)] = (b.cands[a : ends[i]].tolist(), b.priors[a : ends[i]].tolist(), b.link_prob[i])
    assert langs == sorted(langs)  # in language order, each language's batches together
    assert got.keys() == want.keys()
    assert top_k > 6 or any(len(v[0]) == top_k for v in want.values())  # the cut at top_k is exercised
    assert any(not math.isnan(v[2]) for v in want.values())  # and the link probabilities
    for lk, (ents, pri, lp) in want.items():
        g_ents, g_pri, g_lp = got[lk]
        assert g_ents == ents, lk
        # the same float64 values up to rounding (numpy's SIMD sums may round the last bit
        # differently from the reference's order of operations)
        assert g_pri == pytest.approx(pri, rel=1e-12, abs=0), lk
        assert (math.isnan(lp) and math.isnan(g_lp)) or g_lp == lp, lk
