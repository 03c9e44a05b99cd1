"""Per-language alias tables and the key index (read side): memory-mapped marisa tries and
numpy arrays, opened lazily and checked when opened (see docs/reference/bundle-format.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import REBUILD_HINT, read_json_object
from xned.engine.normalize import fold
from xned.engine.stems import ALGORITHMS, stem_key
from xned.errors import BundleError


def load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise BundleError(f"Bundle file {path} is missing; {REBUILD_HINT}.")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BundleError(f"Bundle file {path} is unreadable ({exc}); {REBUILD_HINT}.") from None


def load_trie(path: Path) -> marisa_trie.Trie:
    if not path.is_file():
        raise BundleError(f"Bundle file {path} is missing; {REBUILD_HINT}.")
    trie = marisa_trie.Trie()
    try:
        if path.stat().st_size == 0:
            raise OSError("empty file")
        trie.mmap(str(path))
    except Exception as exc:  # marisa raises plain Exceptions on bad files
        raise BundleError(f"Bundle file {path} is not a marisa trie ({exc}); {REBUILD_HINT}.") from None
    return trie


class AliasTable:
    """One language's alias -> candidates table."""

    def __init__(self, root: Path, lang: str, n_entities: int | None = None):
        self.root = root
        self.lang = lang
        self.n_entities = n_entities
        self.keys = load_trie(root / L.AliasTable.KEYS)
        self.offsets = load_npy(root / L.AliasTable.OFFSETS)
        self.cands = load_npy(root / L.AliasTable.CANDS)
        self.priors = load_npy(root / L.AliasTable.PRIORS)
        self.link_prob = load_npy(root / L.AliasTable.LINK_PROB)
        self.fold_keys = load_trie(root / L.AliasTable.FOLD)
        self.fold_offsets = load_npy(root / L.AliasTable.FOLD_OFFSETS)
        self.fold_targets = load_npy(root / L.AliasTable.FOLD_TARGETS)
        if len(self.offsets) != len(self.keys) + 1 or len(self.cands) != len(self.priors):
            raise BundleError(
                f"Alias table {root} is inconsistent ({len(self.keys)} keys, "
                f"{len(self.offsets)} offsets, {len(self.cands)} candidates, "
                f"{len(self.priors)} priors); {REBUILD_HINT}."
            )
        if len(self.offsets) and (int(self.offsets[0]) != 0 or int(self.offsets[-1]) != len(self.cands)):
            raise BundleError(f"Alias table {root}: offsets.npy does not span cands.npy; {REBUILD_HINT}.")
        if len(self.fold_offsets) != len(self.fold_keys) + 1 or (
            len(self.fold_offsets) and int(self.fold_offsets[-1]) != len(self.fold_targets)
        ):
            raise BundleError(f"Alias table {root}: the folded-key arrays are inconsistent; {REBUILD_HINT}.")
        #: the Snowball algorithm of the table's stem keys (None: it has none)
        self.stem_algorithm: str | None = None
        if (root / L.AliasTable.STEM_CONFIG).is_file():
            self._open_stems()

    def _open_stems(self) -> None:
        path = self.root / L.AliasTable.STEM_CONFIG
        config = read_json_object(path, "Stem config", max_bytes=4096)
        algorithm = config.get("algorithm")
        if algorithm not in set(ALGORITHMS.values()):
            raise BundleError(f"{path}: unknown stemmer {algorithm!r}; rebuild it with: xned kb index --stems")
        self.stem_keys = load_trie(self.root / L.AliasTable.STEM)
        self.stem_offsets = load_npy(self.root / L.AliasTable.STEM_OFFSETS)
        self.stem_targets = load_npy(self.root / L.AliasTable.STEM_TARGETS)
        if len(self.stem_offsets) != len(self.stem_keys) + 1 or int(self.stem_offsets[-1]) != len(self.stem_targets):
            raise BundleError(f"Alias table {self.root}: the stem-key arrays are inconsistent; {REBUILD_HINT}.")
        self.stem_algorithm = algorithm

    def __len__(self) -> int:
        return len(self.keys)

    def key_id(self, key: str) -> int:
        return self.keys.get(key, -1)

    def by_id(self, kid: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.offsets[kid]), int(self.offsets[kid + 1])
        if not 0 <= a <= b <= len(self.cands):
            raise BundleError(f"Alias table {self.root}: offsets.npy is corrupted (row {kid}); {REBUILD_HINT}.")
        ents, pri = self.cands[a:b], self.priors[a:b]
        if len(ents) and self.n_entities is not None and (int(ents.min()) < 0 or int(ents.max()) >= self.n_entities):
            raise BundleError(
                f"Alias table {self.root}: cands.npy holds an entity index outside 0..{self.n_entities - 1} "
                f"(the file is corrupted); {REBUILD_HINT}."
            )
        return ents, pri

    def exact(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        kid = self.keys.get(key, -1)
        return None if kid < 0 else self.by_id(kid)

    def folded(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidates of every key whose accent-folded form equals the query's.

        The fold trie lists only keys that change when folded ("zürich" under "zurich");
        an unaccented key is found by looking the folded query up exactly.
        """
        return self._derived(fold(key) or key, key, self.fold_keys, self.fold_offsets, self.fold_targets)

    def stemmed(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidates of every other key with the stem key of ``key`` (``xned.engine.stems``);
        None without stem keys or a hit."""
        if self.stem_algorithm is None or (stem := stem_key(self.stem_algorithm, key)) is None:
            return None
        return self._derived(stem, key, self.stem_keys, self.stem_offsets, self.stem_targets)

    def _derived(
        self, derived: str, key: str, trie: marisa_trie.Trie, offsets: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidates of the derived key ``derived`` (folded or stemmed) of ``key``: of
        ``derived`` itself as a key (when it differs from ``key``), and of every other key
        that ``trie`` lists under it (``offsets`` into ``targets``), best prior kept."""
        parts = []
        if derived != key and (hit := self.exact(derived)) is not None:
            parts.append(hit)
        did = trie.get(derived, -1)
        if did >= 0:
            a, b = int(offsets[did]), int(offsets[did + 1])
            own = self.key_id(key)
            parts.extend(self.by_id(int(k)) for k in targets[a:b] if int(k) != own)
        return merge_max(parts) if parts else None

    def link_probability(self, key: str) -> float:
        kid = self.keys.get(key, -1)
        return float("nan") if kid < 0 else float(self.link_prob[kid])


def merge_max(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Union of candidate lists keeping each entity's highest prior; renormalized to sum <= 1."""
    if len(parts) == 1:
        return parts[0]
    best: dict[int, float] = {}
    for ents, pri in parts:
        for e, p in zip(ents.tolist(), pri.tolist(), strict=True):
            if p > best.get(e, -1.0):
                best[e] = p
    ents_arr = np.fromiter(best.keys(), dtype=np.int32, count=len(best))
    pri_arr = np.fromiter(best.values(), dtype=np.float32, count=len(best))
    total = float(pri_arr.sum())
    if total > 1.0:
        pri_arr = pri_arr / total
    return ents_arr, pri_arr


class KeyIndex:
    """Which languages' tables hold a key, or a key that folds to it (``kb/key_index/``,
    written with the tables). Without it every table is asked."""

    def __init__(self, root: Path):
        try:
            self.names: list[str] = json.loads((root / L.KeyIndex.LANGUAGES).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{root / L.KeyIndex.LANGUAGES} is unreadable ({exc}); {REBUILD_HINT}.") from None
        self.keys = load_trie(root / L.KeyIndex.KEYS)
        self.offsets = load_npy(root / L.KeyIndex.OFFSETS)
        self.langs_arr = load_npy(root / L.KeyIndex.LANGS)
        self.fold = load_trie(root / L.KeyIndex.FOLD)
        self.fold_offsets = load_npy(root / L.KeyIndex.FOLD_OFFSETS)
        self.fold_langs_arr = load_npy(root / L.KeyIndex.FOLD_LANGS)
        if len(self.offsets) != len(self.keys) + 1 or len(self.fold_offsets) != len(self.fold) + 1:
            raise BundleError(f"Key index {root} is inconsistent; {REBUILD_HINT}.")

    def _get(self, trie: marisa_trie.Trie, offs: np.ndarray, arr: np.ndarray, key: str) -> list[str]:
        kid = trie.get(key, -1)
        if kid < 0:
            return []
        return [self.names[int(i)] for i in arr[int(offs[kid]) : int(offs[kid + 1])]]

    def langs(self, key: str) -> list[str]:
        return self._get(self.keys, self.offsets, self.langs_arr, key)

    def folded_langs(self, key: str) -> list[str]:
        """Tables where ``AliasTable.folded(key)`` can find something."""
        fk = fold(key)
        out = set(self.langs(fk)) if fk is not None else set()
        out.update(self._get(self.fold, self.fold_offsets, self.fold_langs_arr, fk or key))
        return sorted(out)


class LazyTables(Mapping[str, AliasTable]):
    """The alias tables of a KB part, each opened (memory-mapped and checked) on first use:
    a process linking Spanish text opens the Spanish tables, not all 300."""

    def __init__(self, root: Path, langs: Iterable[str], n_entities: int):
        self._root = root
        self._names = sorted(langs)
        self._known = set(self._names)
        self._n = n_entities
        self._open: dict[str, AliasTable] = {}

    def __getitem__(self, lang: str) -> AliasTable:
        table = self._open.get(lang)
        if table is None:
            if lang not in self._known:
                raise KeyError(lang)
            table = self._open[lang] = AliasTable(self._root / lang, lang, self._n)
        return table

    def __contains__(self, lang: object) -> bool:
        return lang in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
