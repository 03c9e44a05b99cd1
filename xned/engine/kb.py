"""Memory-mapped entity store and per-language alias tables (read side).

Layout under ``kb/``: ``xned.engine.layout`` (names, dtypes, shapes) and ``docs/reference/bundle-format.md``.
Arrays are ``.npy`` loaded with ``mmap_mode="r"`` and ``allow_pickle=False``.

``kb/overlay/`` (written by ``xned kb add``) has the same layout for added or updated
entities; it is merged at lookup time (see ``KB.lookup``) until ``xned kb compact``.
Language ``mul`` holds names whose language is not stated; every language consults it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import read_json_object
from xned.engine.dense import DenseIndex, open_dense
from xned.engine.entities import EntityStore
from xned.engine.morph import split_inflected, suffixes
from xned.engine.normalize import dehyphenate, inside_katakana_word, is_cjk, umlauts, undot
from xned.engine.tables import AliasTable, KeyIndex, LazyTables
from xned.errors import InputError
from xned.langs import normalize_lang

MUL = "mul"
Hit = tuple[np.ndarray, np.ndarray]  # candidates and priors of one table
OTHER_LANG_WEIGHT = 0.5  # weight of exact matches from other languages' tables
MIN_CONTAINED = 3  # shortest alias (characters) taken from inside a longer mention; 2 for CJK


@dataclass
class _Part:
    """A base or overlay KB: entities + alias tables, with a global index offset."""

    root: Path
    offset: int
    entities: EntityStore
    meta: dict[str, Any]
    tables: Mapping[str, AliasTable]
    index: KeyIndex | None = None


class KB:
    """Entity store + alias tables, optionally with an overlay from ``xned kb add``.

    Global entity indices: base entities are ``0..N-1``; overlay entities follow at
    ``N..N+M-1``. An overlay entity whose QID is also in the base supersedes it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.base = self._load_part(self.root, 0)
        self.overlay: _Part | None = None
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
        self._contained_memo: dict[tuple[str | None, str], bool] = {}

    @staticmethod
    def _load_part(root: Path, offset: int) -> _Part:
        meta = read_json_object(root / L.KBDir.META, "KB metadata")
        entities = EntityStore(root / L.KBDir.ENTITIES)
        langs = meta.get("languages", {})
        tables = LazyTables(root / L.KBDir.ALIASES, langs, len(entities))
        ki = root / L.KBDir.KEY_INDEX
        index = KeyIndex(ki) if (ki / L.KeyIndex.LANGUAGES).exists() else None
        return _Part(root, offset, entities, meta, tables, index)

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
        """Tables to consult for ``lang`` (with their part's index offset)."""
        parts = [self.base] + ([self.overlay] if self.overlay else [])
        out: list[tuple[AliasTable, int]] = []
        for part in parts:
            if lang is None:
                out.extend((t, part.offset) for t in part.tables.values())
            else:
                for name in (lang, MUL):
                    if name in part.tables:
                        out.append((part.tables[name], part.offset))
        return out

    def lookup(
        self,
        lang: str | None,
        key: str,
        *,
        top_k: int = 30,
        fuzzy: bool = True,
        stems: bool = True,
        contained: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates (global entity indices, priors), best prior first, for a normalized key.

        Rule, first step that finds anything wins:

        0. a key broken at a line end with a plain hyphen ("brau- nau") is first tried
           joined, hyphenated and spaced (steps 1 and 2); the first variant found stands
           for the key from then on;

        1. the exact key in the mention's language and in ``mul`` (base and overlay);
           else the accent-folded key there; (1b) middle dots as spaces, then removed;
           (1c) for German, umlauts written as digraphs ("Oesterreich"); (1d) for
           suffixing languages, the longest alias that is the key minus a case ending
           (``xned.engine.morph``); (1e) with ``stems``, the aliases with the key's
           Snowball stem key (``xned.engine.stems``; tables with stem keys; the linker
           asks it for given spans only: on detected spans it links adjectives and
           demonyms, "Wiener" -> Vienna). Whatever these find is joined
           by the exact key's candidates from every other language's table at a discount
           (``OTHER_LANG_WEIGHT``): names are often written the same across languages
           ("Paris", "Liverpool") and a table may lack the label, but an entity named so in
           the mention's own language keeps the higher prior;
        2. the exact key in every other language's table (names written as in another
           language, e.g. "Washington" in Japanese text);
        3. the folded key in every other language's table;
        4. the longest alias contained in the mention on token boundaries (per character
           for CJK), at least ``MIN_CONTAINED`` characters (2 for CJK): "United Auto
           Workers union" -> "united auto workers", "日本の麻生太郎首相" -> "麻生太郎"
           (not with ``contained=False``).

        With ``lang=None`` every table is used from step 1. A key found in several
        tables gets, per entity, the mean of its priors over those tables (so priors
        still sum to <= 1); overlay entities supersede base entities with the same QID.
        """
        tables = self.tables_for(lang) if lang is not None else []  # None: see _holding
        own_ids = {id(t) for t, _ in tables}
        # (0) line-end hyphenation variants ("brau- nau": joined, hyphenated, spaced) first;
        # the key itself last, and it stays the key for the later steps
        for k in [*(dehyphenate(key) if fuzzy else ()), key]:
            found = self._own(tables, lang, k, fuzzy, stems)
            other_exact = []
            if lang is not None and (fuzzy or not found):
                other_exact = self._collect(self._others(own_ids, k, folded=False), k)
            if found or other_exact:
                key = k
                break
        if found and other_exact:
            return self._merge([(found, 1.0), (other_exact, OTHER_LANG_WEIGHT)], top_k)
        found = found or other_exact
        if not found and fuzzy and lang is not None:
            found = self._collect(self._others(own_ids, key, folded=True), key, AliasTable.folded)
        if not found and fuzzy and contained:
            found = self._contained(key)
        if not found:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        return self._merge([(found, 1.0)], top_k)

    def contained_only(self, lang: str | None, key: str) -> bool:
        """Whether ``lookup`` finds the candidates of ``key`` by a name inside it (step 4)
        because no alias names it whole. Remembered per (language, key)."""
        if " " not in key and not any(is_cjk(ch) for ch in key):
            return False  # one word: an alias inside it on token boundaries is the word itself
        memo = self._contained_memo
        if (lang, key) not in memo:
            if len(memo) >= 1 << 16:
                memo.clear()
            whole = len(self.lookup(lang, key, top_k=1, contained=False)[0]) > 0
            memo[(lang, key)] = not whole and bool(self._contained(key))
        return memo[(lang, key)]

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

    def _own(
        self, tables: list[tuple[AliasTable, int]], lang: str | None, key: str, fuzzy: bool, stems: bool = True
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Step 1 of ``lookup`` in the mention language's tables (1e only with ``stems``)."""
        found = self._collect(self._holding(tables, lang, key), key)
        if found or not fuzzy:
            return found
        found = self._collect(self._holding(tables, lang, key, folded=True), key, AliasTable.folded)
        if not found and (spaced := undot(key)) is not None:
            # "パリス・ヒルトン" -> "パリス ヒルトン" / "パリスヒルトン"
            joined = spaced.replace(" ", "")
            found = self._collect(self._holding(tables, lang, spaced), spaced) or self._collect(
                self._holding(tables, lang, joined), joined
            )
        if not found and lang == "de" and (um := umlauts(key)) is not None:
            found = self._collect(tables, um)
        if not found and (ends := suffixes(lang)):
            # "Frantziara" -> "Frantzia", "Berlins" -> "Berlin" (listed languages only)
            for table, offset in tables:
                stem = split_inflected(key, table.keys.prefixes(key), ends)
                if stem is not None and (hit := table.exact(stem)) is not None and len(hit[0]):
                    found.append((hit[0].astype(np.int64) + offset, hit[1]))
        if not found and stems and lang is not None:  # (1e) "vereinigten staaten" -> "vereinigte staaten"
            found = self._collect(tables, key, AliasTable.stemmed)
        return found

    def _holding(
        self, tables: list[tuple[AliasTable, int]], lang: str | None, key: str, *, folded: bool = False
    ) -> list[tuple[AliasTable, int]]:
        """The tables step 1 probes for ``key``: ``tables`` (the mention language's and
        ``mul``); without a language, every table that can hold ``key`` (its folded form
        with ``folded``) per the parts' key indexes, in ``tables_for(None)`` order, so only
        those are opened (probing all 300 one by one cost 2.8 ms per key)."""
        if lang is not None:
            return tables
        out: list[tuple[AliasTable, int]] = []
        for part in [self.base] + ([self.overlay] if self.overlay else []):
            if part.index is None:
                out.extend((t, part.offset) for t in part.tables.values())
                continue
            names = part.index.folded_langs(key) if folded else part.index.langs(key)
            out.extend((part.tables[n], part.offset) for n in sorted(set(names)) if n in part.tables)
        return out

    def _merge(
        self, groups: list[tuple[list[tuple[np.ndarray, np.ndarray]], float]], top_k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per group, each entity's mean prior over the group's tables, times the group's
        weight; summed over groups and divided by the total weight (sum stays <= 1)."""
        acc: dict[int, float] = {}
        total_w = sum(w for _, w in groups)
        for found, w in groups:
            n = len(found)
            for ents, pri in found:
                for e, p in zip(ents.tolist(), pri.tolist(), strict=True):
                    e = self._superseded.get(e, e)
                    acc[e] = acc.get(e, 0.0) + p * w / (n * total_w)
        items = sorted(acc.items(), key=lambda kv: (-kv[1], self.qid(kv[0])))[:top_k]
        ents_arr = np.array([e for e, _ in items], dtype=np.int32)
        pri_arr = np.array([p for _, p in items], dtype=np.float32)
        return ents_arr, pri_arr

    def _others(self, own_ids: set[int], key: str, *, folded: bool) -> list[tuple[AliasTable, int]]:
        """Tables of other languages that can hold ``key`` (its folded form with
        ``folded``): from the key index where the part has one, else all of them."""
        out: list[tuple[AliasTable, int]] = []
        for part in [self.base] + ([self.overlay] if self.overlay else []):
            if part.index is None:
                names: Iterable[str] = part.tables
            else:
                names = part.index.folded_langs(key) if folded else part.index.langs(key)
            out.extend(
                (part.tables[n], part.offset) for n in names if n in part.tables and id(part.tables[n]) not in own_ids
            )
        return out

    def _contained(self, key: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Candidates of the longest alias (of any language) found inside ``key`` on token
        boundaries."""
        starts = [0] + [i + 1 for i, ch in enumerate(key) if ch == " "]
        starts += [i for i, ch in enumerate(key) if is_cjk(ch) and i not in starts and not inside_katakana_word(key, i)]
        best_len = 0
        best: set[str] = set()
        for part in [self.base] + ([self.overlay] if self.overlay else []):
            tries = [part.index.keys] if part.index is not None else [t.keys for t in part.tables.values()]
            for trie in tries:
                for s in starts:
                    for k in trie.prefixes(key[s:]):
                        end = s + len(k)
                        shortest = 2 if is_cjk(k[0]) else MIN_CONTAINED
                        if len(k) < max(shortest, best_len) or k == key:
                            continue
                        if inside_katakana_word(key, end) or (
                            end < len(key) and key[end] != " " and not is_cjk(key[end - 1]) and not is_cjk(key[end])
                        ):
                            continue  # must end on a token boundary
                        if len(k) > best_len:
                            best_len, best = len(k), set()
                        best.add(k)
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for k in sorted(best):
            found.extend(self._collect(self._others(set(), k, folded=False), k))
        return found

    @staticmethod
    def _collect(
        tables: list[tuple[AliasTable, int]], key: str, how: Callable[[AliasTable, str], Hit | None] = AliasTable.exact
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each table's hit for ``key`` by ``how`` (``AliasTable.exact``, ``folded``, ``stemmed``)."""
        found = []
        for table, offset in tables:
            hit = how(table, key)
            if hit is not None and len(hit[0]):
                found.append((hit[0].astype(np.int64) + offset, hit[1]))
        return found

    def detection_tries(self, lang: str | None) -> tuple[list[marisa_trie.Trie], list[marisa_trie.Trie]]:
        """(key tries, folded-key tries) that mention detection scans: every table, as
        ``lookup`` falls back to every table (a name the KB can link is never missed because
        of the language; ``lang`` picks the case endings and the link probability). A part
        with a key index is scanned through its one union trie (the same keys, one lookup
        per position)."""
        keys: list[marisa_trie.Trie] = []
        folds: list[marisa_trie.Trie] = []
        for part in [self.base] + ([self.overlay] if self.overlay else []):
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
        return self._best_link_probability(self._others(set(), key, folded=False), key)

    @staticmethod
    def _best_link_probability(tables: list[tuple[AliasTable, int]], key: str) -> float:
        best = float("nan")
        for table, _ in tables:
            p = table.link_probability(key)
            if p == p and not (best == best and best >= p):
                best = p
        return best
