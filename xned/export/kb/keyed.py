"""``KeyedBatch``: consecutive keys of one alias table with their candidates, the unit in
which a KB build computes priors (``kb.priors``) and writes tables (``kb.writer``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class KeyedBatch:
    """Consecutive keys of one alias table, in sorted key order: key ``i`` has ``sizes[i]``
    candidates (entity indices, best first) in ``cands`` with their ``priors``, and the
    link probability ``link_prob[i]`` (NaN where unknown)."""

    keys: list[str]
    sizes: np.ndarray
    cands: np.ndarray
    priors: np.ndarray
    link_prob: np.ndarray

    @classmethod
    def of(cls, rows: Iterable[tuple[str, list[int], list[float], float]]) -> KeyedBatch:
        """A batch from ``(key, entity indices, priors, link probability)`` rows."""
        rows = list(rows)
        return cls(
            [r[0] for r in rows],
            np.array([len(r[1]) for r in rows], np.int32),
            np.array([e for r in rows for e in r[1]], np.int32),
            np.array([p for r in rows for p in r[2]], np.float64),
            np.array([r[3] for r in rows], np.float64),
        )
