"""Word experts: one small softmax classifier per mention string (alias key).

Layout under ``experts/``: ``xned.engine.layout.ExpertsDir`` (names, dtypes, shapes) and
``docs/reference/bundle-format.md``.

An expert scores ``softmax(W x + b)`` over its classes for the mention-in-context
embedding ``x``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import REBUILD_HINT, read_json_object
from xned.engine.tables import load_npy, load_trie
from xned.errors import BundleError


class Experts:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.meta = read_json_object(self.root / L.ExpertsDir.META, "Expert metadata")
        self.keys: marisa_trie.Trie = load_trie(self.root / L.ExpertsDir.KEYS)
        self.key_model = load_npy(self.root / L.ExpertsDir.KEY_MODEL)
        self.model_offsets = load_npy(self.root / L.ExpertsDir.MODEL_OFFSETS)
        self.classes = load_npy(self.root / L.ExpertsDir.CLASSES)
        self.weights = load_npy(self.root / L.ExpertsDir.WEIGHTS)
        self.scales = load_npy(self.root / L.ExpertsDir.SCALES)
        self.bias = load_npy(self.root / L.ExpertsDir.BIAS)
        hub = self.root / L.ExpertsDir.HUBNESS
        self.hubness = load_npy(hub) if hub.exists() else None
        if len(self.key_model) != len(self.keys) or len(self.classes) != len(self.weights):
            raise BundleError(f"Experts in {self.root} are inconsistent; {REBUILD_HINT}.")

    def __len__(self) -> int:
        return len(self.model_offsets) - 1

    def model_for(self, lang: str | None, key: str, cands: np.ndarray | None = None) -> int:
        """The model for a mention, first match wins:

        1. its alias key in the mention's language, then ``mul`` (names of unstated
           language), then the source languages (a word expert applies to the same string
           in any language: "Apple" in Japanese text); with no language, any language's;
        2. with ``cands``, the model whose classes cover most of the candidates (at least
           two; ties to the lower model id): candidate sets reached through fallbacks
           (other-language names, document propagation, inflections) have no alias key,
           but an expert trained on those entities still separates them.
        """
        if lang:
            langs = [lang, "mul", *(x for x in self.meta.get("source_langs", []) if x not in (lang, "mul"))]
        else:
            langs = list(self.meta.get("languages", []))
        for name in langs:
            kid = self.keys.get(f"{name}{L.FIELD_SEP}{key}", -1)
            if kid >= 0:
                return int(self.key_model[kid])
        if cands is None or len(cands) < 2:
            return -1
        sorted_classes, model_of_row = self._by_entity
        lo = np.searchsorted(sorted_classes, cands, side="left")
        hi = np.searchsorted(sorted_classes, cands, side="right")
        hits = [model_of_row[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        if len(hits) < 2:
            return -1
        models, counts = np.unique(np.concatenate(hits), return_counts=True)
        best = int(np.argmax(counts))  # first maximum: the lowest model id
        return int(models[best]) if counts[best] >= 2 else -1

    @cached_property
    def _by_entity(self) -> tuple[np.ndarray, np.ndarray]:
        """(class entities sorted, the model of each), built on first use."""
        order = np.argsort(self.classes, kind="stable")
        sizes = np.diff(self.model_offsets)
        model_of_row = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
        return np.asarray(self.classes)[order], model_of_row[order]

    def hubness_of(self, ents: np.ndarray) -> np.ndarray | None:
        """Hubness of candidate entities (0 for entities added after training)."""
        if self.hubness is None:
            return None
        idx = np.asarray(ents, np.int64)
        ok = idx < len(self.hubness)
        out = np.zeros(len(idx), np.float32)
        out[ok] = self.hubness[idx[ok]]
        return out

    def known(self, model: int, cands: np.ndarray) -> np.ndarray:
        """``predict`` for one candidate, which needs no context: 1 where the expert knows
        it (a softmax over one class), NaN where it does not."""
        a, b = int(self.model_offsets[model]), int(self.model_offsets[model + 1])
        classes = set(self.classes[a:b].tolist())
        return np.array([1.0 if int(c) in classes else np.nan for c in cands], np.float32)

    def predict(self, model: int, x: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Expert probability for each candidate, the softmax taken over the expert's classes
        that are among ``cands`` (NaN for candidates the expert does not know)."""
        a, b = int(self.model_offsets[model]), int(self.model_offsets[model + 1])
        classes = self.classes[a:b]
        pos = {int(c): k for k, c in enumerate(classes)}
        rows = [pos.get(int(c), -1) for c in cands]
        known = [r for r in rows if r >= 0]
        out = np.full(len(cands), np.nan, dtype=np.float32)
        if not known:
            return out
        idx = np.asarray(known) + a
        w = self.weights[idx].astype(np.float32) * self.scales[idx, None]
        logits = w @ x.astype(np.float32) + self.bias[idx]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        it = iter(p.tolist())
        for k, r in enumerate(rows):
            if r >= 0:
                out[k] = next(it)
        return out
