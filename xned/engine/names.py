"""Name retrieval: candidates whose *name* is near the mention string, in any script.

The alias tables find an entity only through a name the KB holds in the mention's script, or
close to it; the dense index (``xned.engine.dense``) compares the mention *in context* with
entity *texts* ("label: description"), where a thousand aerospace entities crowd round
"ボーイング". Here the mention string alone and every entity's label alone are embedded by
the bundle's encoder ("query: " prefix, mean-pooled) and compared in one multilingual space:
"ボーイング" lands on "Boeing", "エアバス" on "Airbus", an OCR-damaged "Vereinigte Staaten"
near "United States". The labels are indexed at KB build with ``--names`` (``kb/names.usearch``,
HNSW over the centred int8 vectors, as the dense index; ``xned kb index --names`` adds it
to a bundle). Opt-in: it buys recall and ranking accuracy, and the calibration then raises
the NIL threshold, which costs Japanese links (README, "Name retrieval").

Each mention gets up to ``names_k`` retrieved entities as extra candidates (prior 0, the
``dense`` feature set, like dense retrieval) and every candidate, however it was found, the
``name`` feature: the centred cosine between the mention string and its label (0 for an
entity the index does not hold). The calibrated fusion learns what both are worth.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from xned.engine.dense import DenseIndex, open_dense
from xned.engine.encoder import Encoder
from xned.engine.kb import KB
from xned.engine.pipeline import Candidates, Outcomes, Prepared, per_document

NAMES_K = 5  # retrieved names per mention (10 found 0.1-0.7 points more gold, at twice the cost)
CACHE_SIZE = 10_000  # mention strings whose vectors a process keeps (float16)
Key = tuple[int, int, int]  # (document, start, end)


class Names:
    """Mention strings -> label candidates and the ``name`` feature, batched per call."""

    def __init__(self, kb: KB, encoder: Encoder | None, k: int = NAMES_K):
        self.kb = kb
        self.encoder = encoder
        self.k = k
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        #: the bundle's name index (None: it has none, or no encoder, or ``k`` is 0)
        self.index: DenseIndex | None = None
        if encoder is not None and k > 0:
            self.index = open_dense(kb.root, len(kb.base.entities), kb.dim, names=True)

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Centred unit vectors of the mention strings ``texts`` (LRU-cached)."""
        index, encoder = self.index, self.encoder
        assert index is not None and encoder is not None
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            fresh = index.centred(encoder.embed_texts(todo, "query"))
            for t, v in zip(todo, fresh, strict=True):
                self._cache[t] = v.astype(np.float16)
        out = np.zeros((len(texts), encoder.dim), np.float32)
        for r, t in enumerate(texts):
            out[r] = self._cache[t]
            self._cache.move_to_end(t)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    def find(self, mentions: dict[Key, str]) -> dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per mention: (its string's centred vector, retrieved entities, their cosines)."""
        index = self.index
        if index is None or not mentions:
            return {}
        strings = list(dict.fromkeys(t.strip() for t in mentions.values()))  # one search per string
        vecs = self.vectors(strings)
        by_string = dict(zip(strings, zip(vecs, self.kb.retrieve(vecs, self.k, index), strict=True), strict=True))
        return {k: (v, ids, cos) for k, t in mentions.items() for v, (ids, cos) in [by_string[t.strip()]]}

    def cosines(self, vec: np.ndarray, ents: np.ndarray) -> np.ndarray:
        """The ``name`` feature of candidates ``ents`` for a mention string's vector."""
        index = self.index
        if index is None or not len(ents):
            return np.zeros(len(ents), np.float32)
        base = np.asarray(ents) < index.n_entities  # entities of `kb add` are not indexed
        out = np.zeros(len(ents), np.float32)
        if base.any():
            out[base] = index.stored(np.asarray(ents)[base]) @ vec
        return out


def with_found(
    c: Candidates,
    dense: tuple[np.ndarray, np.ndarray] | None,
    name: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    top_k: int,
    names: Names | None,
) -> Candidates:
    """``c`` with what retrieval found: its alias candidates first (their order kept: exact
    matches still win ties), then the entities dense retrieval found, then those name
    retrieval found, ``top_k`` in all, the retrieved ones with prior 0; with the ``dense``
    column (1 for a retrieved-only candidate; None when none was added) and the ``name``
    column (None without name retrieval)."""
    ents, pri = c.ents, c.priors
    have = set(ents.tolist())
    extra: list[int] = []
    for found in (dense[0] if dense is not None else None, name[1] if name is not None else None):
        for i in [] if found is None else found.tolist():
            if i not in have:
                have.add(i)
                extra.append(i)
    extra = extra[: max(0, top_k - len(ents))]
    mask = None
    if extra:
        mask = np.concatenate([np.zeros(len(ents), np.float32), np.ones(len(extra), np.float32)])
        ents = np.concatenate([ents.astype(np.int32), np.asarray(extra, np.int32)])
        pri = np.concatenate([pri.astype(np.float32), np.zeros(len(extra), np.float32)])
    cos = names.cosines(name[0], ents) if name is not None and names is not None else None
    return Candidates(c.mention, c.key, ents, pri, mask, cos, c.stem)


def retrieve(kb: KB, names: Names, dense_k: int, batch: dict[int, Prepared], top_k: int) -> dict[int, Exception]:
    """Adds to every encoded mention of the documents ``batch`` (index -> document) the
    entities retrieved by its vector in context (dense) and by its string (names), batched;
    returns the documents whose name pass failed, with the exception."""
    keys: list[Key] = []
    vecs: list[np.ndarray] = []
    for i, p in batch.items():
        for (s, e), v in (p.vectors or {}).items():
            keys.append((i, s, e))
            vecs.append(v)
    if not keys:
        return {}
    if dense_k > 0 and kb.dense is not None:
        dense: list[tuple[np.ndarray, np.ndarray] | None] = list(kb.retrieve(np.stack(vecs), dense_k))
    else:
        dense = [None] * len(keys)

    def run(docs: list[int]) -> dict[int, dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        want = set(docs)
        found = names.find({k: batch[k[0]].doc.text[k[1] : k[2]] for k in keys if k[0] in want})
        return {i: {k: v for k, v in found.items() if k[0] == i} for i in docs}

    by_doc: Outcomes[dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]]] = Outcomes()
    if names.index is not None:
        names.index.check()
        by_doc = per_document(sorted({i for i, _, _ in keys}), run)
    hits = {k: (d, by_doc.done.get(k[0], {}).get(k)) for k, d in zip(keys, dense, strict=True)}
    for i, p in batch.items():
        if i in by_doc.failed or not p.vectors:
            continue
        p.sets = [
            [with_found(c, *hits[(i, *c.span)], top_k, names) if (i, *c.span) in hits else c for c in cands]
            for cands in p.sets
        ]
    return by_doc.failed
