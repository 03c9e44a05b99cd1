"""Document-level propagation of candidates from longer mentions to shorter ones."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

_SPLIT = re.compile(r"[\s.,'’\-・·･‧]+")  # middle dots separate the parts of katakana names
# Han, kana: scripts written without spaces, where a name's parts are not tokens
_CJK = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+$")
MIN_CJK_PART = 2  # characters: a single kanji or kana is a particle or a common word


def _tokens(key: str) -> tuple[str, ...]:
    return tuple(t for t in _SPLIT.split(key) if t)


def propagate(
    keys: list[str], per: list[tuple[np.ndarray, np.ndarray]], top_k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Document-level propagation: a mention whose words are a contiguous part of a longer
    mention of the same document ("Obama" after "Barack Obama", "Annan" after "Kofi Annan"),
    or its acronym ("UN" after "United Nations"), inherits that mention's candidates: the
    priors become half the longer mention's plus half its own (all of the longer mention's
    when it has none). The longest such mention with candidates is used, the first in the
    document among equals.

    Work is per distinct key, with the longer keys found through an index of their words,
    so a long document with thousands of mentions costs little more than its distinct names.

    In scripts without spaces (Han, kana, Hangul) a name's parts are not tokens, so a mention
    of at least ``MIN_CJK_PART`` characters *that has no candidates of its own* also inherits
    from a longer mention of the document that starts with it ("麻生" after "麻生太郎",
    "トヨタ" after "トヨタ自動車"): family names and short forms come first in these
    scripts. A mention with candidates of its own keeps them ("日本" after "日本銀行").
    """
    toks = [_tokens(k) for k in keys]
    first: dict[tuple[str, ...], int] = {}  # distinct token tuple -> its first mention with candidates
    for i, t in enumerate(toks):
        if t and t not in first and len(per[i][0]):
            first[t] = i
    donors = list(first)
    by_word: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    by_acronym: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for t in donors:
        for w in set(t):
            by_word[w].append(t)
        if len(t) >= 2:
            by_acronym["".join(w[0] for w in t)].append(t)
    by_prefix: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for t in donors:
        if len(t) == 1 and len(t[0]) > MIN_CJK_PART and _CJK.match(t[0]):
            by_prefix[t[0][:MIN_CJK_PART]].append(t)
    has_own = {t for i, t in enumerate(toks) if len(per[i][0])}
    chosen: dict[tuple[str, ...], tuple[str, ...] | None] = {}
    for t in dict.fromkeys(x for x in toks if x):
        n = len(t)
        pool = list(by_word.get(t[0], ()))
        cjk = n == 1 and len(t[0]) >= MIN_CJK_PART and t not in has_own and bool(_CJK.match(t[0]))
        if cjk:
            pool += by_prefix.get(t[0][:MIN_CJK_PART], [])
        if n == 1 and len(t[0]) >= 2:
            pool += by_acronym.get(t[0], [])
        best: tuple[str, ...] | None = None
        for v in pool:
            prefix = cjk and len(v) == 1 and len(v[0]) > len(t[0]) and v[0].startswith(t[0])
            if len(v) <= n and not prefix:
                continue
            part = any(v[a : a + n] == t for a in range(len(v) - n + 1))
            acro = n == 1 and len(t[0]) >= 2 and len(v) >= 2 and t[0] == "".join(w[0] for w in v)
            if not (part or acro or prefix):
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
