"""Where a document is cut for the encoder: the token range of each character span, and
chunks of at most ``size`` tokens that do not cut a mention (``Encoder.encode_documents``,
``Encoder.embed_mentions``, the trained detector)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np


def token_spans(
    offsets: Sequence[tuple[int, int]] | np.ndarray, spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Token range ``[a, b)`` of each character span (at least one token where the text has any)."""
    n = len(offsets)
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = offs[:, 0], offs[:, 1]
    out = []
    for s, e in spans:
        a = int(np.searchsorted(ends, s, side="right"))
        b = int(np.searchsorted(starts, e, side="left"))
        if b <= a:  # span inside one token or between tokens
            a = min(a, max(n - 1, 0))
            b = min(a + 1, n)
        out.append((a, b))
    return out


def context_chunks(n: int, tok_spans: Sequence[tuple[int, int]], size: int, context: int) -> list[tuple[int, int]]:
    """Disjoint token ranges to encode for the mentions ``tok_spans`` of a document of ``n``
    tokens: each mention with ``context`` tokens either side, overlapping ranges merged (so
    nearby mentions share one pass and no token is encoded twice), merged ranges longer than
    ``size`` cut by ``chunk_bounds``. Sorted by start; every mention starts in one of them."""
    if not tok_spans:
        return []
    merged: list[tuple[int, int, list[tuple[int, int]]]] = []  # (lo, hi, the spans inside)
    for a, b in sorted(tok_spans):
        lo, hi = max(0, a - context), min(n, max(b, a + 1) + context)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi), merged[-1][2])
        else:
            merged.append((lo, hi, []))
        merged[-1][2].append((a, b))
    out: list[tuple[int, int]] = []
    for lo, hi, inside in merged:
        bounds = chunk_bounds(hi - lo, [(a - lo, b - lo) for a, b in inside], size)
        out.extend((lo + int(x), lo + int(y)) for x, y in zip(bounds[:-1], bounds[1:], strict=True))
    return out


def chunk_bounds(n: int, tok_spans: Sequence[tuple[int, int]], size: int) -> np.ndarray:
    """Boundaries ``[0, ..., n]`` of consecutive chunks of at most ``size`` tokens. A boundary
    that would cut a mention moves back to the mention's start (a mention longer than a chunk
    is cut); when the rest of the document fits in two chunks it is split in the middle, so
    the last chunk is not a short tail with little context. Mentions that overlap (nested
    given spans) may be cut: moving back to one's start can cut the other."""
    if n <= size:
        return np.array([0, max(n, 0)], np.int64)
    ordered = sorted(tok_spans)
    firsts = [a for a, _ in ordered]
    bounds = [0]
    pos = 0
    while n - pos > size:
        cut = pos + size if n - pos >= 2 * size else pos + (n - pos + 1) // 2
        moved = True
        while moved:
            moved = False
            for a, b in ordered[bisect.bisect_right(firsts, pos) : bisect.bisect_left(firsts, cut)]:
                if b > cut:
                    cut, moved = a, True
                    break
        bounds.append(cut)
        pos = cut
    bounds.append(n)
    return np.asarray(bounds, np.int64)
