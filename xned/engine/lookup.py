"""Candidate lookup: the rule that finds the entities a normalized mention string may name in
a KB's alias tables (exact, folded, inflected and stemmed keys in the mention's language,
then every other language, then the longest alias inside the mention)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.entities import EntityStore
from xned.engine.morph import split_inflected, suffixes
from xned.engine.normalize import dehyphenate, inside_katakana_word, is_cjk, umlauts, undot
from xned.engine.person import is_legal_form
from xned.engine.tables import AliasTable, KeyIndex

MUL = "mul"  # names whose language is not stated: every language consults them
Hit = tuple[np.ndarray, np.ndarray]  # candidates and priors of one table
OTHER_LANG_WEIGHT = 0.5  # weight of exact matches from other languages' tables
MIN_CONTAINED = 3  # shortest alias (characters) taken from inside a longer mention; 2 for CJK
CONTAINED_MEMO = 1 << 16  # (language, key) pairs whose contained_only answer is remembered


@dataclass
class KBPart:
    """A base or overlay KB: entities + alias tables, with a global index offset."""

    root: Path
    offset: int
    entities: EntityStore
    meta: dict[str, Any]
    tables: Mapping[str, AliasTable]
    index: KeyIndex | None = None


class AliasLookup:
    """``KB.lookup``, ``KB.contained_names`` and ``KB.stem_only`` over the KB's ``parts`` (base,
    then overlay); ``superseded`` maps a base entity to the overlay entity that replaces it, ``qid`` names
    an entity (ties between equal priors go by QID)."""

    def __init__(self, parts: list[KBPart], superseded: dict[int, int], qid: Callable[[int], str]):
        self.parts = parts
        self.superseded = superseded
        self.qid = qid
        self._contained_memo: dict[tuple[str | None, str], tuple[str, ...]] = {}
        self._stem_memo: dict[tuple[str | None, str], bool] = {}

    def tables_for(self, lang: str | None) -> list[tuple[AliasTable, int]]:
        """Tables to consult for ``lang`` (with their part's index offset)."""
        parts = self.parts
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
                other_exact = self._collect(self.others(own_ids, k, folded=False), k)
            if found or other_exact:
                key = k
                break
        if found and other_exact:
            return self._merge([(found, 1.0), (other_exact, OTHER_LANG_WEIGHT)], top_k)
        found = found or other_exact
        if not found and fuzzy and lang is not None:
            found = self._collect(self.others(own_ids, key, folded=True), key, AliasTable.folded)
        if not found and fuzzy and contained:
            found = self._contained(key)
        if not found:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        return self._merge([(found, 1.0)], top_k)

    def contained_only(self, lang: str | None, key: str) -> bool:
        """Whether ``lookup`` finds the candidates of ``key`` by a name inside it (step 4)
        because no alias names it whole."""
        return bool(self.contained_names(lang, key))

    def contained_names(self, lang: str | None, key: str) -> tuple[str, ...]:
        """The names inside ``key`` whose candidates ``lookup`` gives it (step 4), () when an
        alias names it whole or none is inside. Remembered per (language, key)."""
        if " " not in key and not any(is_cjk(ch) for ch in key):
            return ()  # one word: an alias inside it on token boundaries is the word itself
        memo = self._contained_memo
        if (lang, key) not in memo:
            if len(memo) >= CONTAINED_MEMO:
                memo.clear()
            whole = len(self.lookup(lang, key, top_k=1, contained=False)[0]) > 0
            inner = () if whole else tuple(sorted(self._inner_names(key)))
            memo[(lang, key)] = inner if inner and self._collect_names(inner) else ()
        return memo[(lang, key)]

    def stem_only(self, lang: str | None, key: str) -> bool:
        """Whether ``lookup`` finds the candidates of ``key`` only through its Snowball stem
        key (step 1e): no alias names it as written, in any table ("Aias" -> "Aia", "Chiles" ->
        "Chile"). Remembered per (language, key)."""
        if lang is None or not any(t.stem_algorithm is not None for t, _ in self.tables_for(lang)):
            return False  # no stem keys for the language: step 1e never runs
        memo = self._stem_memo
        if (lang, key) not in memo:
            if len(memo) >= CONTAINED_MEMO:
                memo.clear()
            plain = len(self.lookup(lang, key, top_k=1, stems=False, contained=False)[0]) > 0
            memo[(lang, key)] = not plain and len(self.lookup(lang, key, top_k=1, contained=False)[0]) > 0
        return memo[(lang, key)]

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
        for part in self.parts:
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
                    e = self.superseded.get(e, e)
                    acc[e] = acc.get(e, 0.0) + p * w / (n * total_w)
        items = sorted(acc.items(), key=lambda kv: (-kv[1], self.qid(kv[0])))[:top_k]
        ents_arr = np.array([e for e, _ in items], dtype=np.int32)
        pri_arr = np.array([p for _, p in items], dtype=np.float32)
        return ents_arr, pri_arr

    def others(self, own_ids: set[int], key: str, *, folded: bool) -> list[tuple[AliasTable, int]]:
        """Tables of other languages that can hold ``key`` (its folded form with
        ``folded``): from the key index where the part has one, else all of them."""
        out: list[tuple[AliasTable, int]] = []
        for part in self.parts:
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
        boundaries; a legal form ("Inc", "SpA", "AG") is no such alias."""
        return self._collect_names(sorted(self._inner_names(key)))

    def _collect_names(self, names: Iterable[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every table's candidates of each of ``names``."""
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for k in names:
            found.extend(self._collect(self.others(set(), k, folded=False), k))
        return found

    def _inner_names(self, key: str) -> set[str]:
        """The longest aliases inside ``key`` on token boundaries (see ``_contained``)."""
        starts = [0] + [i + 1 for i, ch in enumerate(key) if ch == " "]
        starts += [i for i, ch in enumerate(key) if is_cjk(ch) and i not in starts and not inside_katakana_word(key, i)]
        best_len = 0
        best: set[str] = set()
        for part in self.parts:
            tries = [part.index.keys] if part.index is not None else [t.keys for t in part.tables.values()]
            for trie in tries:
                for s in starts:
                    for k in trie.prefixes(key[s:]):
                        end = s + len(k)
                        shortest = 2 if is_cjk(k[0]) else MIN_CONTAINED
                        if len(k) < max(shortest, best_len) or k == key or is_legal_form(k):
                            continue  # a company's legal form names no one ("Agrimont SpA" is no Spa)
                        if inside_katakana_word(key, end) or (
                            end < len(key) and key[end] != " " and not is_cjk(key[end - 1]) and not is_cjk(key[end])
                        ):
                            continue  # must end on a token boundary
                        if len(k) > best_len:
                            best_len, best = len(k), set()
                        best.add(k)
        return best

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
