"""Document-level propagation of candidates from longer mentions to shorter ones."""

from __future__ import annotations

import re

import numpy as np


def _tokens(key: str) -> list[str]:
    return [t for t in re.split(r"[\s.,'’\-]+", key) if t]


def propagate(
    keys: list[str], per: list[tuple[np.ndarray, np.ndarray]], top_k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Document-level propagation: a mention whose words are a contiguous part of a longer
    mention of the same document ("Obama" after "Barack Obama", "Annan" after "Kofi Annan"),
    or its acronym ("UN" after "United Nations"), inherits that mention's candidates: the
    priors become half the longer mention's plus half its own (all of the longer mention's
    when it has none). The longest such mention is used, earlier ones first."""
    toks = [_tokens(k) for k in keys]
    out = list(per)
    for i, ti in enumerate(toks):
        if not ti:
            continue
        best = -1
        for j, tj in enumerate(toks):
            if j == i or len(tj) <= len(ti) or not len(per[j][0]):
                continue
            n = len(ti)
            part = any(tj[a : a + n] == ti for a in range(len(tj) - n + 1))
            acro = n == 1 and len(ti[0]) >= 2 and len(tj) >= 2 and ti[0] == "".join(t[0] for t in tj)
            if not (part or acro):
                continue
            if best < 0 or len(tj) > len(toks[best]) or (len(tj) == len(toks[best]) and j < i <= best):
                best = j
        if best < 0:
            continue
        ents_b, pri_b = per[best]
        ents_i, pri_i = per[i]
        acc: dict[int, float] = {}
        for e, p in zip(ents_b.tolist(), pri_b.tolist(), strict=True):
            acc[e] = acc.get(e, 0.0) + 0.5 * p + (0.5 if not len(ents_i) else 0.0) * p
        for e, p in zip(ents_i.tolist(), pri_i.tolist(), strict=True):
            acc[e] = acc.get(e, 0.0) + 0.5 * p
        items = sorted(acc.items(), key=lambda kv: -kv[1])[:top_k]
        out[i] = (np.array([e for e, _ in items], np.int32), np.array([p for _, p in items], np.float32))
    return out
