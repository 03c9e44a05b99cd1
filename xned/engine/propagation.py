"""Document-level propagation of candidates from longer mentions to shorter ones."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

import numpy as np


def _tokens(key: str) -> tuple[str, ...]:
    return tuple(t for t in re.split(r"[\s.,'’\-]+", key) if t)


def propagate(
    keys: list[str],
    per: list[tuple[np.ndarray, np.ndarray]],
    top_k: int,
    inner: Callable[[str], tuple[str, ...]] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Document-level propagation: a mention whose words are a contiguous part of a longer
    mention of the same document ("Obama" after "Barack Obama", "Annan" after "Kofi Annan"),
    or its acronym ("UN" after "United Nations"), inherits that mention's candidates: the
    priors become half the longer mention's plus half its own (all of the longer mention's
    when it has none). The longest such mention with candidates is used, the first in the
    document among equals. A mention whose candidates are those of a name inside it
    (``inner(key)``, the names: no alias names it whole, ``KB.contained_names``) gives them
    only to a part of those names ("Rolls" after "Rolls-Royce Plc"), never to another part of
    it: "Frey" after "Buchhalter einer Bank in Zürich Eugen Frey" is no Zürich, "CMS" after
    "CMS Enhancements Inc" no company named Inc.

    Work is per distinct key, with the longer keys found through an index of their words,
    so a long document with thousands of mentions costs little more than its distinct names.
    """
    toks = [_tokens(k) for k in keys]
    first: dict[tuple[str, ...], int] = {}  # distinct token tuple -> its first mention with candidates
    for i, t in enumerate(toks):
        if t and t not in first and len(per[i][0]):
            first[t] = i
    donors = list(first)
    # a donor found by names inside it: the token tuples of those names (None: named whole)
    within: dict[tuple[str, ...], list[tuple[str, ...]] | None] = {}
    for v in donors:
        names = inner(keys[first[v]]) if inner is not None else ()
        within[v] = [_tokens(k) for k in names] or None
    by_word: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    by_acronym: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for t in donors:
        for w in set(t):
            by_word[w].append(t)
        if len(t) >= 2:
            by_acronym["".join(w[0] for w in t)].append(t)
    chosen: dict[tuple[str, ...], tuple[str, ...] | None] = {}
    for t in dict.fromkeys(x for x in toks if x):
        n = len(t)
        pool = list(by_word.get(t[0], ()))
        if n == 1 and len(t[0]) >= 2:
            pool += by_acronym.get(t[0], [])
        best: tuple[str, ...] | None = None
        for v in pool:
            if len(v) <= n:
                continue
            parts = within[v] or [v]  # a piece donor gives only to a part of its names inside
            part = any(u[a : a + n] == t for u in parts for a in range(len(u) - n + 1))
            acro = within[v] is None and n == 1 and len(t[0]) >= 2 and len(v) >= 2 and t[0] == "".join(w[0] for w in v)
            if not (part or acro):
                continue
            if best is None or len(v) > len(best) or (len(v) == len(best) and first[v] < first[best]):
                best = v
        chosen[t] = best
    out = list(per)
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, t in enumerate(toks):
        donor = chosen.get(t) if t else None
        if donor is None:
            continue
        if keys[i] not in merged:
            merged[keys[i]] = _merge(per[first[donor]], per[i], top_k)
        out[i] = merged[keys[i]]
    return out


def _merge(
    longer: tuple[np.ndarray, np.ndarray], own: tuple[np.ndarray, np.ndarray], top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    ents_b, pri_b = longer
    ents_i, pri_i = own
    acc: dict[int, float] = {}
    for e, p in zip(ents_b.tolist(), pri_b.tolist(), strict=True):
        acc[e] = acc.get(e, 0.0) + 0.5 * p + (0.5 if not len(ents_i) else 0.0) * p
    for e, p in zip(ents_i.tolist(), pri_i.tolist(), strict=True):
        acc[e] = acc.get(e, 0.0) + 0.5 * p
    items = sorted(acc.items(), key=lambda kv: -kv[1])[:top_k]
    return np.array([e for e, _ in items], np.int32), np.array([p for _, p in items], np.float32)
