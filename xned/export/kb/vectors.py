"""Which entities need a vector (``xned kb build --vectors ambiguous``): those that share a
name, a key or its accent-folded form in any language table, with another entity. Only
their similarity to a context can reorder candidates. The (name, entity) pairs go to a
sorted spill on disk while the alias tables are written; one merge pass then marks them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from xned.engine.normalize import fold
from xned.export.kb.keyed import KeyedBatch
from xned.export.spill import Spill


def noting(keyed: Iterable[KeyedBatch], names: Spill) -> Iterator[KeyedBatch]:
    """``keyed`` unchanged, each (name, entity) pair noted in ``names`` (the key and its
    folded form)."""
    for batch in keyed:
        ends = np.cumsum(batch.sizes).tolist()
        cands = batch.cands.tolist()
        for key, a, b in zip(batch.keys, [0, *ends[:-1]], ends, strict=True):
            fk = fold(key)
            for e in cands[a:b]:
                names.add(f"{key}\t{e}")
                if fk is not None:
                    names.add(f"{fk}\t{e}")
        yield batch


def shared_names(names: Spill, n: int) -> np.ndarray:
    """Entities (bool mask over ``n``) that share a name with another entity: the ones
    whose similarity to a context can change a ranking. One pass over the sorted pairs."""
    mask = np.zeros(n, bool)
    cur: str | None = None
    group: set[int] = set()
    for line in names.merged():
        key, _, e = line.rpartition("\t")
        if key != cur:
            if len(group) > 1:
                mask[list(group)] = True
            cur, group = key, set()
        group.add(int(e))
    if len(group) > 1:
        mask[list(group)] = True
    return mask
