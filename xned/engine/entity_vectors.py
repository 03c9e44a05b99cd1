"""Entity vectors at run time: the KB's stored vectors, and for an entity stored without
one (a KB built with ``--vectors ambiguous``, an entity added later with ``xned kb add``)
its passage embedded by the bundle's encoder on first use, so similarity to the context
still decides whether a lone candidate falls to NIL. Computed vectors are kept in a
bounded cache (float16, least recently used out first)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from xned.engine.encoder import Encoder
from xned.engine.kb import KB
from xned.engine.pipeline import Prepared


def passage(qid: str, label: str, description: str, type_name: str) -> str:
    """The text embedded for an entity, at KB build and at run time alike: "label:
    description" ("label: type", or the label alone, when there is no description)."""
    extra = description or type_name
    label = label or qid
    return f"{label}: {extra}" if extra else label


class EntityVectors:
    """``get(ents)``: float32 ``[n, dim]`` vectors of global entity indices; rows the KB
    lacks are embedded (``prefetch`` does it for a whole batch in one encoder pass) when an
    encoder is given, else left as zeros (the scorer then uses its typical cosine)."""

    def __init__(self, kb: KB, encoder: Encoder | None, capacity: int = 20_000):
        self.kb = kb
        self.encoder = encoder
        self.capacity = capacity
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # entities embedded so far (for benchmarks and tests)

    def _missing(self, ents: np.ndarray) -> np.ndarray:
        if self.kb.overlay is None and self.kb.base.entities.vector_rows is None:
            return np.zeros(0, np.int64)  # every entity has its vector: nothing to gather twice
        stored = self.kb.vectors(ents)
        if stored is None:
            return np.zeros(0, np.int64)
        return np.unique(np.asarray(ents, np.int64)[~stored.any(axis=1)])

    def prefetch(self, ents: np.ndarray) -> None:
        """Embed, in one encoder pass, the entities among ``ents`` that have no stored vector
        and are not cached."""
        if self.encoder is None or not self.kb.has_vectors or not len(ents):
            return
        with self._lock:
            todo = [int(e) for e in self._missing(np.unique(ents)) if int(e) not in self._cache]
        if not todo:
            return
        kb = self.kb
        texts = [passage(kb.qid(e), *kb.record(e), kb.type_name(e)) for e in todo]
        vecs = self.encoder.embed_texts(texts, "passage").astype(np.float16)
        with self._lock:
            self.computed += len(todo)
            for e, v in zip(todo, vecs, strict=True):
                self._cache[e] = v
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)

    def get(self, ents: np.ndarray, embed: np.ndarray | None = None) -> np.ndarray | None:
        """Vectors of ``ents`` (None when the KB has no vectors at all); of those without a
        stored one, only the rows ``embed`` allows (default: all) are embedded, the others
        stay zero."""
        out = self.kb.vectors(ents)
        if out is None or self.encoder is None:
            return out
        none = ~out.any(axis=1) if embed is None else ~out.any(axis=1) & embed
        if none.any():
            self.prefetch(np.asarray(ents)[none])  # normally done already, batch-wide
            with self._lock:
                for r in np.flatnonzero(none).tolist():
                    v = self._cache.get(int(ents[r]))
                    if v is not None:
                        self._cache.move_to_end(int(ents[r]))
                        out[r] = v
        return out


def encoded_candidates(batch: Iterable[Prepared]) -> np.ndarray:
    """The alias candidates of every mention that has a vector in context (those whose
    similarity is computed; a retrieved-only one is never embedded, see ``Evidence``) in the
    prepared documents ``batch``: what ``prefetch`` embeds in one pass."""
    got = [
        c.ents if c.dense is None else c.ents[c.dense == 0]
        for p in batch
        if p.vectors
        for c in p.mentions()
        if c.span in p.vectors
    ]
    return np.concatenate(got) if got else np.zeros(0, np.int64)
