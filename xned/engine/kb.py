"""Memory-mapped entity store and per-language alias tables (read side).

Layout under ``kb/``: ``xned.engine.layout`` (names, dtypes, shapes) and ``docs/reference/bundle-format.md``.
Arrays are ``.npy`` loaded with ``mmap_mode="r"`` and ``allow_pickle=False``.

``kb/overlay/`` (written by ``xned kb add``) has the same layout for added or updated
entities; it is merged at lookup time (``xned.engine.lookup``) until ``xned kb compact``.
Language ``mul`` holds names whose language is not stated; every language consults it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import read_json_object
from xned.engine.dense import DenseIndex, open_dense
from xned.engine.entities import EntityStore
from xned.engine.lookup import AliasLookup, KBPart
from xned.engine.tables import AliasTable, KeyIndex, LazyTables
from xned.errors import InputError
from xned.langs import normalize_lang


class KB:
    """Entity store + alias tables, optionally with an overlay from ``xned kb add``.

    Global entity indices: base entities are ``0..N-1``; overlay entities follow at
    ``N..N+M-1``. An overlay entity whose QID is also in the base supersedes it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.base = self._load_part(self.root, 0)
        self.overlay: KBPart | None = None
        ov = self.root / L.KBDir.OVERLAY
        if (ov / L.KBDir.META).exists():
            self.overlay = self._load_part(ov, len(self.base.entities))
        self._superseded: dict[int, int] = {}
        if self.overlay is not None:
            for qid, oid in self.overlay.entities.qids.iteritems():
                bid = self.base.entities.index(qid)
                if bid >= 0:
                    self._superseded[bid] = oid + self.overlay.offset
        self.languages = sorted(set(self.base.tables) | (set(self.overlay.tables) if self.overlay else set()))
        self.types: list[str] = list(self.base.meta.get("types", []))
        self._lookup = AliasLookup(self.parts, self._superseded, self.qid)
        #: Candidates (global entity indices, priors), best prior first, for a normalized key:
        #: the rule of ``xned.engine.lookup.AliasLookup.lookup``
        self.lookup = self._lookup.lookup

    @staticmethod
    def _load_part(root: Path, offset: int) -> KBPart:
        meta = read_json_object(root / L.KBDir.META, "KB metadata")
        entities = EntityStore(root / L.KBDir.ENTITIES)
        langs = meta.get("languages", {})
        tables = LazyTables(root / L.KBDir.ALIASES, langs, len(entities))
        ki = root / L.KBDir.KEY_INDEX
        index = KeyIndex(ki) if (ki / L.KeyIndex.LANGUAGES).exists() else None
        return KBPart(root, offset, entities, meta, tables, index)

    # -- dense retrieval --------------------------------------------------------------------
    @cached_property
    def dense(self) -> DenseIndex | None:
        """Nearest-entity index over the base entities' vectors (None: the bundle has none)."""
        return open_dense(self.root, len(self.base.entities), self.dim)

    def retrieve(
        self, vectors: np.ndarray, k: int, index: DenseIndex | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query vector: the ``k`` nearest entities (global indices, cosines) in ``index``
        (default: the dense index of entity vectors)."""
        index = self.dense if index is None else index
        if index is None:
            return [(np.zeros(0, np.int32), np.zeros(0, np.float32)) for _ in range(len(vectors))]
        out = index.search(vectors, k)
        if self._superseded:  # an overlay entity replaces the base entity with its QID
            out = [(np.array([self._superseded.get(i, i) for i in ids.tolist()], np.int32), c) for ids, c in out]
        return out

    # -- entities ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.base.entities) + (len(self.overlay.entities) if self.overlay else 0)

    def _part_of(self, idx: int) -> tuple[EntityStore, int]:
        if self.overlay is not None and idx >= self.overlay.offset:
            return self.overlay.entities, idx - self.overlay.offset
        return self.base.entities, idx

    def qid(self, idx: int) -> str:
        store, i = self._part_of(idx)
        return store.qid(i)

    def index(self, qid: str) -> int:
        if self.overlay is not None:
            i = self.overlay.entities.index(qid)
            if i >= 0:
                return i + self.overlay.offset
        return self.base.entities.index(qid)

    def record(self, idx: int) -> tuple[str, str]:
        store, i = self._part_of(idx)
        return store.record(i)

    def type_name(self, idx: int) -> str:
        store, i = self._part_of(idx)
        part = self.overlay if store is not self.base.entities and self.overlay else self.base
        types = part.meta.get("types", [])
        t = int(store.type_ids[i])
        return types[t] if 0 <= t < len(types) else ""

    @property
    def has_vectors(self) -> bool:
        return self.base.entities.vectors is not None

    @cached_property
    def dim(self) -> int:
        v = self.base.entities.vectors
        return 0 if v is None else int(v.shape[1])

    def vectors(self, idxs: np.ndarray) -> np.ndarray | None:
        """Float32 entity embeddings for global indices (rows of zeros where unknown)."""
        if not self.has_vectors:
            return None
        idxs = np.asarray(idxs, dtype=np.int64)
        if self.overlay is None:
            return self.base.entities.vectors_of(idxs)
        out = np.zeros((len(idxs), self.dim), np.float32)
        in_ov = idxs >= self.overlay.offset
        if (~in_ov).any():
            base = self.base.entities.vectors_of(idxs[~in_ov])
            if base is not None:
                out[~in_ov] = base
        if in_ov.any():
            ov = self.overlay.entities.vectors_of(idxs[in_ov] - self.overlay.offset)
            if ov is not None:
                out[in_ov] = ov
        return out

    # -- aliases ----------------------------------------------------------------------------
    def check_lang(self, lang: str | None) -> None:
        """``lang`` must already be normalized (``xned.langs.normalize_lang``)."""
        if lang is None or lang in self.languages:
            return
        if normalize_lang(lang) != lang:
            raise InputError(f"Invalid language code {lang!r}: use an ISO 639 code such as 'es'.")

    def tables_for(self, lang: str | None) -> list[tuple[AliasTable, int]]:
        """Tables to consult for ``lang`` (with their part's index offset; None: every table)."""
        return self._lookup.tables_for(lang)

    def lookup_all(
        self, lang: str | None, keys: list[str], *, top_k: int = 30, stems: bool = True
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``lookup`` of each key, each distinct key once (a long document repeats its names;
        the arrays of one key are shared, never modified)."""
        seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for k in keys:
            if k not in seen:
                seen[k] = self.lookup(lang, k, top_k=top_k, stems=stems)
        return [seen[k] for k in keys]

    def contained_only(self, lang: str | None, key: str) -> bool:
        """Whether ``lookup`` finds the candidates of ``key`` by a name inside it (its last
        step) because no alias names it whole."""
        return self._lookup.contained_only(lang, key)

    def contained_names(self, lang: str | None, key: str) -> tuple[str, ...]:
        """The names inside ``key`` whose candidates ``lookup`` gives it, () when an alias
        names it whole (or none is inside)."""
        return self._lookup.contained_names(lang, key)

    def stem_only(self, lang: str | None, key: str) -> bool:
        """Whether ``lookup`` (with stems) finds the candidates of ``key`` only through its
        stem key: no alias names it as written."""
        return self._lookup.stem_only(lang, key)

    @property
    def parts(self) -> list[KBPart]:
        """The base KB, then the overlay where there is one."""
        return [self.base] + ([self.overlay] if self.overlay else [])

    def detection_tries(self, lang: str | None) -> tuple[list[marisa_trie.Trie], list[marisa_trie.Trie]]:
        """(key tries, folded-key tries) that mention detection scans: every table, as
        ``lookup`` falls back to every table (a name the KB can link is never missed because
        of the language; ``lang`` picks the case endings and the link probability). A part
        with a key index is scanned through its one union trie (the same keys, one lookup
        per position)."""
        keys: list[marisa_trie.Trie] = []
        folds: list[marisa_trie.Trie] = []
        for part in self.parts:
            if part.index is not None:
                keys.append(part.index.keys)
                folds.append(part.index.fold)
                continue
            for table in part.tables.values():
                keys.append(table.keys)
                folds.append(table.fold_keys)
        return keys, folds

    def link_probability(self, lang: str | None, key: str) -> float:
        """Highest known link probability of the key over the tables of ``lang`` that hold
        it, else over every other table that does (the order of ``lookup``)."""
        if lang is not None:
            own = [(t, o) for t, o in self.tables_for(lang) if key in t.keys]
            if own:
                return self._best_link_probability(own, key)
        return self._best_link_probability(self._lookup.others(set(), key, folded=False), key)

    @staticmethod
    def _best_link_probability(tables: list[tuple[AliasTable, int]], key: str) -> float:
        best = float("nan")
        for table, _ in tables:
            p = table.link_probability(key)
            if p == p and not (best == best and best >= p):
                best = p
        return best
