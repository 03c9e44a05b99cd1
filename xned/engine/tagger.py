"""Trained mention detection: a token-classification head on the encoder's token states.

Layout under ``detector/`` (``xned.engine.layout.DetectorDir``): a two-layer perceptron
``softmax(relu(x W1 + b1) W2 + b2)`` over the labels O, B, I (BIO tags on the tokenizer's
pieces), trained by ``xned export detector`` on source-language annotated mentions, with
the input standardization folded into ``W1``/``b1``. It reads the states of the same
encoder pass that gives the mentions their vectors, so detection costs one matrix product
per token on top of encoding the whole text once.

Decoding: a piece is inside a mention when ``1 - P(O)`` reaches ``min_score`` (B or I,
whichever is likelier); a span starts at a B piece (or I after O) and runs over the
following I pieces; it is widened to whole words (``xned.engine.mentions.tokenize``: a name is never
cut inside a word, an inflected form keeps its case ending) and scored by the mean of
``1 - P(O)`` over its pieces.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import REBUILD_HINT, read_json_object
from xned.engine.encoder import Encoder
from xned.engine.mentions import tokenize
from xned.engine.tables import load_npy
from xned.errors import BundleError, InputError

LABELS = ("O", "B", "I")
DETECTION = ("auto", "model", "rules")
MIN_SCORE = 0.5
#: chosen on dev subsets (MEANTIME en/ja, HIPE-2020 de/fr dev, 40 documents each): end-to-end
#: F1 24.1 with the rules alone, 21.2 with the detector alone, 24.2-24.5 fused at 0.1-0.2
RULE_MIN_SCORE = 0.15


@dataclass(frozen=True, slots=True)
class Tagged:
    start: int
    end: int
    score: float  # mean 1 - P(O) over the span's pieces


class Tagger:
    """The detector head of a bundle (``detector/``)."""

    def __init__(self, root: Path, dim: int | None = None):
        self.root = Path(root)
        self.meta = read_json_object(self.root / L.DetectorDir.META, "Detector metadata")
        self.w1 = load_npy(self.root / L.DetectorDir.W1).astype(np.float32)
        self.b1 = load_npy(self.root / L.DetectorDir.B1).astype(np.float32)
        self.w2 = load_npy(self.root / L.DetectorDir.W2).astype(np.float32)
        self.b2 = load_npy(self.root / L.DetectorDir.B2).astype(np.float32)
        shapes_ok = (
            self.w1.ndim == 2
            and self.b1.shape == (self.w1.shape[1],)
            and self.w2.shape == (self.w1.shape[1], len(LABELS))
            and self.b2.shape == (len(LABELS),)
            and (dim is None or self.w1.shape[0] == dim)
        )
        if not shapes_ok:
            raise BundleError(
                f"Detector in {self.root} does not fit the encoder (W1 {self.w1.shape}, W2 {self.w2.shape}, "
                f"encoder dim {dim}); {REBUILD_HINT}."
            )
        self.min_score = float(self.meta.get("min_score", MIN_SCORE))
        #: a rule-based match the detector did not tag is kept when its pieces score this
        self.rule_min_score = float(self.meta.get("rule_min_score", RULE_MIN_SCORE))
        for name in ("min_score", "rule_min_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BundleError(f"Detector {name} {getattr(self, name)} is not in [0, 1]; {REBUILD_HINT}.")

    @classmethod
    def open(cls, bundle: Path, encoder: Encoder | None, detection: str = "auto") -> Tagger | None:
        """The bundle's detector for ``detection`` (``model``: required, ``auto``: where the
        bundle has one, ``rules``: none)."""
        if detection not in DETECTION:
            raise InputError(f"Unknown detection {detection!r}; use one of {', '.join(DETECTION)}.")
        present = (bundle / L.DETECTOR / L.DetectorDir.META).exists() and encoder is not None
        if detection == "model" and not present:
            raise InputError(
                f"Bundle {bundle} has no trained mention detector ({L.DETECTOR}/ with an encoder); "
                f"train one with: xned detector train DATA.jsonl --bundle {bundle}, or use --detection rules."
            )
        if detection == "rules" or encoder is None or not present:
            return None
        return cls(bundle / L.DETECTOR, dim=int(encoder.config.get("dim", 0)) or None)

    @property
    def dim(self) -> int:
        return int(self.w1.shape[0])

    def probs(self, states: np.ndarray) -> np.ndarray:
        """``[n, 3]`` label probabilities (O, B, I) of ``n`` token states."""
        h = np.maximum(states.astype(np.float32, copy=False) @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decode(self, text: str, offsets: np.ndarray, probs: np.ndarray, words: Any = None) -> list[Tagged]:
        """Mention spans (characters of ``text``) from the label probabilities of the pieces
        whose character ranges are ``offsets`` ``[n, 2]``; see the module docstring."""
        return decode(text, offsets, probs, self.min_score, words)


def decode(text: str, offsets: np.ndarray, probs: np.ndarray, min_score: float, words: Any = None) -> list[Tagged]:
    """``words``: a callable giving ``tokenize(text)`` (cached by the caller: a document is
    decoded chunk by chunk, and tokenizing the whole text per chunk would be quadratic)."""
    inside = 1.0 - probs[:, 0]
    # a piece is in a mention when P(not O) reaches min_score; B or I, whichever is likelier
    labels = np.where(inside >= min_score, 1 + (probs[:, 2] > probs[:, 1]), 0)
    runs: list[tuple[int, int]] = []  # piece ranges [a, b)
    start = -1
    for t, lab in enumerate(labels.tolist()):
        s, e = offsets[t]
        if e <= s:  # a piece with no characters (a lone word-start marker) neither starts nor ends a span
            continue
        if start >= 0 and lab != 2:
            runs.append((start, t))
            start = -1
        if lab == 1 or (lab == 2 and start < 0):
            start = t
    if start >= 0:
        runs.append((start, len(labels)))
    if not runs:
        return []
    words = words() if words is not None else tokenize(text)
    word_starts = [s for s, _ in words]
    out: list[Tagged] = []
    for a, b in runs:
        cs, ce = _strip(text, int(offsets[a][0]), int(offsets[b - 1][1]))
        if ce <= cs:
            continue
        # widen to whole words
        i = bisect.bisect_right(word_starts, cs) - 1
        if i >= 0 and words[i][1] > cs:
            cs = words[i][0]
        j = bisect.bisect_left(word_starts, ce) - 1
        if j >= 0 and words[j][1] > ce:
            ce = words[j][1]
        score = float(inside[a:b].mean())
        if score < min_score:
            continue
        if out and cs < out[-1].end:  # widening made two runs meet: one mention
            prev = out.pop()
            cs, score = prev.start, max(prev.score, score)
        out.append(Tagged(cs, ce, score))
    return out


_EDGE = " \t\r\n\u00a0,;:!?\"'«»„“”‘’"


def _strip(text: str, s: int, e: int) -> tuple[int, int]:
    """Trim white space, quotes and clause punctuation off a span's ends (and a bracket that
    is not closed inside it)."""
    while s < e and (text[s] in _EDGE or text[s] == "("):
        s += 1
    while e > s and (text[e - 1] in _EDGE or (text[e - 1] == ")" and "(" not in text[s : e - 1])):
        e -= 1
    return s, e
