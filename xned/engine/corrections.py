"""Analyst corrections, applied at once: each corrected mention string gets its word expert
refit on the taught examples, nothing else is retrained.

For a mention the fused scorer gives every candidate a log-odds ``z_c`` ("this candidate is
the gold entity"), and the mention is NIL when the best ``sigmoid(z)`` is below the
threshold, i.e. when the best ``z`` is below ``z_NIL = logit(threshold)``. Read as a softmax
over the candidates and NIL, that decision is ``argmax(z_1 .. z_n, z_NIL)``. A correction
refits, for one alias key, a residual word expert over those classes (QIDs and NIL)::

    z'_c = z_c + w_c . x + b_c

where ``x`` is the mention-in-context vector. ``W, b`` minimise the cross-entropy of the
softmax over the taught examples of that key (their base ``z`` recomputed from the bundle)
plus an L2 penalty that keeps the refit close to the bundle's own decision. One example is
enough to flip its mention (the penalty bounds how far: a gap of up to ~50 in log-odds);
examples of two senses separate them by context. Keys without corrections are untouched;
candidates the residual does not know keep their score. The linker shifts every candidate by
``-(w_NIL . x + b_NIL)`` so that the threshold test stays ``sigmoid(z') >= threshold``.

A correction carries to contexts like the one it was taught in, not to every use of the
name: where the bundle's ``scoring.json`` records a reach ``(lo, hi)``, the residual is
scaled by ``g(s)``, ``s`` the highest cosine between the mention and the key's taught
examples, ramping from 0 at ``lo`` to 1 at ``hi``: the median and the 90th percentile of the
cosine between two mentions of the same name in two different Wikipedia articles, measured
with the bundle's encoder (``xned experts reach``). A context no closer to a taught one than
an unrelated article is left to the bundle; one that resembles it gets the correction in
full. Without it, "Europe" taught as NIL in two 19th-century newspapers turned every modern
"Europe" NIL. A bundle without a reach applies corrections to every use of the name.

Taught QIDs that are not candidates of their mention string (no alias names them) are added
to its candidates. Corrections live in the user's state directory (``xned.engine.state``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import marisa_trie
import numpy as np

from xned.engine.documents import as_document, as_mention, check_text
from xned.engine.encoder import Encoder
from xned.engine.kb import KB
from xned.engine.normalize import normalize
from xned.engine.state import CONTEXT_CHARS, Example, StateError, Store, bundle_id, merge, state_dir
from xned.errors import InputError
from xned.types import Document, Mention

NIL = "NIL"
L2 = 0.01  # penalty on W and b (a single example moves its own logit by up to ~(1 - p) / L2)
STEPS = 200
LR = 0.3
MAX_EXAMPLES_PER_KEY = 256  # the newest are kept for the refit
#: how far above the measured reach a key with one taught example starts applying (``Residual.share``)
FEW_SHIFT = 0.25

#: (lang, key, mention, vector) -> (class names: candidate QIDs then NIL, base logits)
BaseScores = Callable[[str | None, str, str, np.ndarray], tuple[list[str], np.ndarray]]


@dataclass
class Residual:
    """The refit part of one key's word expert."""

    rows: dict[str, int]  # class name (QID or NIL) -> row of W and b
    weights: np.ndarray  # float32 [C, D]
    bias: np.ndarray  # float32 [C]
    examples: int
    seconds: float
    taught: np.ndarray | None = None  # float32 [n, D]: the examples' vectors (for the reach)

    def share(self, x: np.ndarray, reach: tuple[float, float] | None) -> float:
        """How much of the correction applies to a mention with vector ``x`` (0..1): nothing
        below the reach's low cosine to the nearest taught example, all of it above its high
        one. The window is the measured reach for many examples; few examples are less sure
        evidence than what the expert and the prior know, so their window starts higher, by
        ``FEW_SHIFT / n`` of the way from the high cosine to 1 (one example: a quarter): one
        taught "Georgia, the US state" carries to "The governor of Georgia signed a law",
        not to "Georgia and Armenia signed a border treaty"."""
        if reach is None or self.taught is None or not len(self.taught):
            return 1.0
        lo, hi = reach
        shift = (1.0 - hi) * FEW_SHIFT / max(self.examples, 1)
        lo, hi = lo + shift, hi + shift
        s = float(np.max(self.taught @ x.astype(np.float32)))
        return min(max((s - lo) / (hi - lo), 0.0), 1.0)

    def delta(self, names: list[str], x: np.ndarray) -> np.ndarray:
        """The residual of each class named (0 for classes it does not know)."""
        idx = np.array([self.rows.get(n, -1) for n in names])
        out = np.zeros(len(names), np.float32)
        known = idx >= 0
        if known.any():
            k = idx[known]
            out[known] = self.weights[k] @ x.astype(np.float32) + self.bias[k]
        return out


def fit(x: np.ndarray, classes: list[list[str]], base: list[np.ndarray], labels: list[str]) -> Residual:
    """Fit ``W, b`` (Adam on the L2-penalised cross-entropy; every example's classes and
    base logits given, its label among its classes)."""
    t0 = time.perf_counter()
    names = sorted({c for cs in classes for c in cs})
    rows = {c: i for i, c in enumerate(names)}
    n, dim = x.shape
    width = max(len(cs) for cs in classes)
    idx = np.zeros((n, width), np.int64)
    z0 = np.full((n, width), -np.inf, np.float32)
    onehot = np.zeros((n, width), np.float32)
    for i, (cs, z, y) in enumerate(zip(classes, base, labels, strict=True)):
        idx[i, : len(cs)] = [rows[c] for c in cs]
        z0[i, : len(cs)] = z
        onehot[i, cs.index(y)] = 1.0
    mask = np.isfinite(z0)
    w = np.zeros((len(names), dim), np.float32)
    b = np.zeros(len(names), np.float32)
    params = [w, b]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    rows_i = np.arange(n)[:, None]
    for step in range(1, STEPS + 1):
        delta = (x @ w.T + b)[rows_i, idx]
        logits = np.where(mask, z0 + delta, -np.inf)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = np.zeros((n, len(names)), np.float32)
        np.add.at(g, (np.broadcast_to(rows_i, idx.shape)[mask], idx[mask]), (p - onehot)[mask])
        grads = [g.T @ x + 2 * L2 * w, g.sum(axis=0) + 2 * L2 * b]
        for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
            m[k] = 0.9 * m[k] + 0.1 * grad
            v[k] = 0.999 * v[k] + 0.001 * grad * grad
            param -= LR * (m[k] / (1 - 0.9**step)) / (np.sqrt(v[k] / (1 - 0.999**step)) + 1e-8)
    return Residual(rows, w, b, n, time.perf_counter() - t0, np.asarray(x, np.float32))


class Corrections:
    """The corrections of one bundle: taught examples by key, refit on first use."""

    def __init__(
        self,
        store: Store | None,
        base: BaseScores,
        qid_index: Callable[[str], int],
        reach: tuple[float, float] | None = None,
        dim: int | None = None,
    ):
        self.store = store
        self.reach = reach
        self.dim = dim  # the encoder's vector length: examples of another length are skipped
        self.base = base
        self.qid_index = qid_index
        self.error: str | None = None
        self._sig: tuple[int, int] | None = None
        self.by_key: dict[str, list[Example]] = {}
        self._models: dict[str, Residual | None] = {}
        self._extra: dict[str, np.ndarray] = {}
        self._taught: marisa_trie.Trie | None = None
        self.sync()

    @classmethod
    def open(
        cls,
        bundle_root: Path,
        state: str | Path | None,
        base: BaseScores,
        qid_index: Callable[[str], int],
        reach: tuple[float, float] | None = None,
        dim: int | None = None,
    ) -> Corrections:
        return cls(Store(state_dir(state), bundle_id(bundle_root)), base, qid_index, reach, dim)

    # -- reading ----------------------------------------------------------------------------
    def sync(self) -> None:
        """Reload when the file changed (another process taught or forgot something). Lines
        that are no correction, or whose vectors do not fit this encoder, are skipped and
        reported once; the others are used. An unreadable file is reported and linking goes
        on without corrections."""
        if self.store is None:
            return
        sig = self.store.signature()
        if sig == self._sig:
            return
        self._sig = sig
        try:
            examples = self.store.read()
        except (StateError, OSError) as exc:
            self.error = str(exc)
            self._set([])
            warnings.warn(f"{exc} Linking without corrections until then.", RuntimeWarning, stacklevel=2)
            return
        self.error = None
        problems = self.store.problems
        if self.dim is not None:
            wrong = [e for e in examples if len(e.vector) != self.dim]
            if wrong:
                problems = problems + [
                    f"correction {e.id} ({e.mention!r}) has a {len(e.vector)}-d vector, this encoder's are "
                    f"{self.dim}-d (taught with another encoder)"
                    for e in wrong
                ]
                examples = [e for e in examples if len(e.vector) == self.dim]
        if problems:
            self.store.problems = problems
            warnings.warn(self.store.problem_note(), RuntimeWarning, stacklevel=2)
        self._set(examples)

    def _set(self, examples: list[Example]) -> None:
        by_key: dict[str, list[Example]] = {}
        for e in examples:
            by_key.setdefault(e.key, []).append(e)
        for key in list(self._models):  # keep the residuals whose examples did not change
            old = self.by_key.get(key, [])
            if [e.id for e in old] != [e.id for e in by_key.get(key, [])]:
                del self._models[key]
        self.by_key = by_key
        self._extra.clear()
        self._taught = None

    @property
    def examples(self) -> list[Example]:
        return [e for es in self.by_key.values() for e in es]

    def __len__(self) -> int:
        return sum(len(es) for es in self.by_key.values())

    def covers(self, key: str) -> bool:
        return key in self.by_key

    def taught_keys(self) -> marisa_trie.Trie | None:
        """The keys taught as an entity (not NIL only), for detection: a name an analyst
        linked is found in later text even when no alias of the KB spells it. One trie per
        state of the corrections (a new object after every change); None without any."""
        if self._taught is None:
            keys = [k for k, es in self.by_key.items() if any(e.qid is not None for e in es)]
            if not keys:
                return None
            self._taught = marisa_trie.Trie(keys)
        return self._taught

    # -- applying ---------------------------------------------------------------------------
    def extra(self, key: str) -> np.ndarray:
        """Entity indices taught for ``key`` (those the KB knows), to add to its candidates."""
        if key not in self._extra:
            qids = dict.fromkeys(e.qid for e in self.by_key.get(key, ()) if e.qid is not None)
            found = [self.qid_index(q) for q in qids]
            self._extra[key] = np.array([i for i in found if i >= 0], np.int64)
        return self._extra[key]

    def extend(self, key: str, ents: np.ndarray, pri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ents, priors)`` with the taught entities of ``key`` appended (prior 0)."""
        if key not in self.by_key:
            return ents, pri
        have = set(np.asarray(ents).tolist())
        add = [int(e) for e in self.extra(key) if int(e) not in have]
        if not add:
            return ents, pri
        return (
            np.concatenate([np.asarray(ents), np.array(add, dtype=np.asarray(ents).dtype)]),
            np.concatenate([np.asarray(pri), np.zeros(len(add), dtype=np.asarray(pri).dtype)]),
        )

    def model(self, key: str) -> Residual | None:
        """The refit residual of ``key`` (fit on first use, then cached; None without one)."""
        if key not in self.by_key:
            return None
        if key not in self._models:
            xs, classes, base, labels = [], [], [], []
            for e in self.by_key[key][-MAX_EXAMPLES_PER_KEY:]:
                names, z = self.base(e.lang, e.key, e.mention, e.vector)
                label = NIL if e.qid is None else e.qid
                if label in names:  # else an entity the KB no longer has: nothing to learn
                    xs.append(e.vector)
                    classes.append(names)
                    base.append(z)
                    labels.append(label)
            self._models[key] = fit(np.stack(xs), classes, base, labels) if labels else None
        return self._models[key]

    def adjust(self, key: str, qids: list[str], x: np.ndarray, z: np.ndarray) -> np.ndarray | None:
        """The corrected scores of one mention's candidates (None when ``key`` has none or
        the context is out of the corrections' reach), shifted so that the NIL test stays
        ``sigmoid(z) >= threshold``."""
        res = self.model(key)
        if res is None:
            return None
        g = res.share(x, self.reach)
        if g <= 0.0:
            return None
        d = g * res.delta([*qids, NIL], x)
        return z + d[:-1] - d[-1]

    # -- teaching ---------------------------------------------------------------------------
    def add(self, examples: list[Example], bundle_root: Path) -> list[Example]:
        """Store ``examples`` (idempotent by id) and refit their keys at once."""
        if self.store is None:
            raise StateError("Corrections are switched off for this linker (use_corrections=False).")
        if self.error is not None:
            raise StateError(self.error)
        written = self.store.update(lambda old: merge(old, examples), bundle_root)
        self._sig = self.store.signature()
        self._set(written)
        for key in dict.fromkeys(e.key for e in examples):
            self.model(key)
        return examples


def make_examples(docs: Iterable[Any], encoder: Encoder, kb: KB, max_chars: int) -> list[Example]:
    """Examples from canonical documents whose mentions carry the taught ``qid`` (null =
    NIL), encoded in one pass. ``InputError`` names the first bad document or mention."""
    items: list[tuple[Document, list[tuple[Mention, str | None]]]] = []
    for n, raw in enumerate(docs, 1):
        doc = as_document(raw)
        check_text(doc.text, max_chars)
        kb.check_lang(doc.lang)
        taught: list[tuple[Mention, str | None]] = []
        for m in doc.mentions or ():
            if not isinstance(m, dict) or "qid" not in m:
                raise InputError(
                    f'Document {n}: mention {str(m)[:80]!r} has no "qid"; give the entity it refers to '
                    f"(null: it is not an entity of the KB)."
                )
            qid = m["qid"]
            if qid is not None and (not isinstance(qid, str) or kb.index(qid) < 0):
                raise InputError(
                    f"Document {n}: {qid!r} is not an entity of this bundle's KB; add it first "
                    f"(xned kb add FILE --bundle B) or teach null for 'not an entity of the KB'."
                )
            taught.append((as_mention(m, doc.text), qid))
        if not taught:
            raise InputError(f'Document {n} has no mentions to teach ("mentions": [{{start, end, qid}}]).')
        items.append((doc, taught))
    if not items:
        return []
    vectors = encoder.embed_mentions([d.text for d, _ in items], [[(m.start, m.end) for m, _ in t] for _, t in items])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for (doc, taught), vecs in zip(items, vectors, strict=True):
        for (m, qid), v in zip(taught, vecs, strict=True):
            key = normalize(m.text)
            vec = np.asarray(v, np.float32)
            ctx = context_of(doc.text, m.start, m.end)
            out.append(Example(Example.make_id(key, qid, ctx, vec), now, doc.lang, key, m.text, qid, ctx, vec))
    return out


def context_of(text: str, start: int, end: int) -> str:
    """The stored context: up to ``CONTEXT_CHARS`` each side, the mention in [[ ]]."""
    a, b = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
    return f"{text[a:start]}[[{text[start:end]}]]{text[end:b]}".replace("\n", " ")
