"""Score fusion and NIL decision.

Every candidate ``c`` of a mention gets features

    log_prior   log(max(prior, 1e-4))             alias-table prior p(e | m)
    sim         cos(mention-in-context, entity)     0 when the KB has no vectors
    sim_gap     sim - max sim over the candidates   <= 0; 0 for the most similar
    expert      log(max(p_expert, 1e-4))            0 where no expert covers the mention
    has_expert  1 if an expert covers this mention and this candidate, else 0
    hub         the candidate's hubness: mean of its 10 highest cosines to source-language
                mention contexts (``experts/hubness.npy``; 0 without experts). Entities
                with short or generic texts are near every context; a negative weight
                turns ``sim`` into a CSLS-style local similarity
    dense       1 for a candidate found only by dense retrieval (no alias of the mention
                names it; ``xned.engine.dense``), else 0. Its prior is 0, so ``log_prior``
                sits at the floor; this weight says how much more a retrieved candidate is
                worth than that floor
    name        centred cosine between the mention string alone and the candidate's label
                alone (``xned.engine.names``; 0 without a name index)
    partial     1 for an alias candidate of a mention no alias names whole, found by a name
                inside it ("Pacific Ocean" -> "Pacific", ``KB.contained_only``), else 0. The
                same for every alias candidate of a mention, so it moves the confidence, not
                the ranking: such candidates are seldom the named entity
    stem        1 for an alias candidate of a given span that no alias names as written, found
                by the span's Snowball stem key ("Aias" -> "Aia", "Chiles" -> "Chile";
                ``KB.stem_only``), else 0. Mention-level like ``partial``: a stem match is
                weaker evidence than an alias

and a linear score ``z = bias + sum_f w_f * feature_f``. Candidates are ranked by ``z``;
ties break on prior, then QID. The confidence of a link is ``sigmoid(z)`` of the chosen
candidate, i.e. the model is a pointwise logistic regression "is this candidate the gold
entity" (fit on training data by ``xned experts calibrate``; the defaults below are
hand-set). A mention is NIL when it has no candidate or its confidence is below the
threshold.

Variants used by ``xned eval``: ``prior`` (rank by prior only), ``similarity`` (rank by
sim only), ``experts`` (expert probability where an expert exists, similarity fallback
otherwise, prior to break ties) and ``fused`` (the calibrated model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xned.errors import BundleError, InputError

FEATURES = ("log_prior", "sim", "sim_gap", "expert", "has_expert", "hub", "dense", "name", "partial", "stem")
#: Features with one value per mention (not per candidate): fitted with the confidence, not
#: the ranking (``xned.export.experts.calibrate``)
MENTION_FEATURES = ("partial", "stem")
VARIANTS = ("fused", "prior", "similarity", "experts")

DEFAULT_WEIGHTS = {
    "log_prior": 1.0,
    "sim": 2.0,
    "sim_gap": 8.0,
    "expert": 1.0,
    "has_expert": 0.5,
    "hub": 0.0,
    "dense": 0.0,
    "name": 0.0,
    "partial": 0.0,
    "stem": 0.0,
}
DEFAULT_BIAS = 0.5
DEFAULT_THRESHOLD = 0.3
#: Range of the cosine between a mention in context and an entity text, and its typical
#: value, for bundles whose scoring.json does not record them (E5-style encoders).
DEFAULT_SIM_RANGE = (0.0, 1.0)
DEFAULT_SIM_TYPICAL = 0.8


@dataclass
class Scorer:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    bias: float = DEFAULT_BIAS
    threshold: float = DEFAULT_THRESHOLD
    variant: str = "fused"
    sim_range: tuple[float, float] = DEFAULT_SIM_RANGE
    sim_typical: float = DEFAULT_SIM_TYPICAL
    #: cosine to the nearest taught example at which an analyst's correction starts to apply
    #: and fully applies (``xned.export.experts.reach``); None: everywhere
    reach: tuple[float, float] | None = None

    @classmethod
    def load(cls, path: Path | None, variant: str = "fused") -> Scorer:
        if variant not in VARIANTS:
            raise InputError(f"Unknown scoring variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
        if path is None or not path.exists():
            return cls(variant=variant)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            weights = {k: float(data["weights"].get(k, 0.0)) for k in FEATURES}
            lo, hi = (float(x) for x in data.get("sim_range", DEFAULT_SIM_RANGE))
            typical = float(data.get("sim_typical", DEFAULT_SIM_TYPICAL))
            if not lo <= typical <= hi:
                raise ValueError(f"sim_typical {typical} outside sim_range [{lo}, {hi}]")
            reach = data.get("corrections_reach")
            if reach is not None:
                r0, r1 = (float(x) for x in reach)
                if not -1.0 <= r0 < r1 <= 1.0:
                    raise ValueError(f"corrections_reach {reach} is not two cosines, low < high")
                reach = (r0, r1)
            return cls(weights, float(data["bias"]), float(data["threshold"]), variant, (lo, hi), typical, reach)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(
                f"Scoring file {path} is invalid ({exc}); rebuild it with xned experts calibrate."
            ) from None

    def features(
        self,
        priors: np.ndarray,
        sims: np.ndarray | None,
        experts: np.ndarray | None,
        hub: np.ndarray | None = None,
        dense: np.ndarray | None = None,
        name: np.ndarray | None = None,
        partial: np.ndarray | None = None,
        stem: np.ndarray | None = None,
    ) -> np.ndarray:
        n = len(priors)
        f = np.zeros((n, len(FEATURES)), np.float32)
        f[:, 0] = np.log(np.maximum(priors, 1e-4))
        if sims is not None and n:
            f[:, 1] = sims
            f[:, 2] = sims - sims.max()
        if experts is not None:
            known = ~np.isnan(experts)
            f[known, 3] = np.log(np.maximum(experts[known], 1e-4))
            f[known, 4] = 1.0
        if hub is not None and n:
            f[:, 5] = hub
        if dense is not None and n:
            f[:, 6] = dense
        if name is not None and n:
            f[:, 7] = name
        if partial is not None and n:
            f[:, 8] = partial
        if stem is not None and n:
            f[:, 9] = stem
        return f

    def score(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ranking score, confidence in [0, 1]) per candidate for the chosen variant."""
        if self.variant == "prior":
            z = feats[:, 0].copy()
            return z, np.exp(z)
        if self.variant == "similarity":
            z = feats[:, 1].copy()
            return z, np.clip(z, 0.0, 1.0)
        if self.variant == "experts":
            has = feats[:, 4] > 0
            if has.any():
                z = np.where(has, feats[:, 3], -20.0) + 1e-3 * feats[:, 0]
                return z, np.exp(np.where(has, feats[:, 3], -20.0))
            z = feats[:, 1] + 1e-3 * feats[:, 0]
            return z, np.clip(feats[:, 1], 0.0, 1.0)
        w = np.array([self.weights[k] for k in FEATURES], np.float32)
        z = feats @ w + self.bias
        return z, 1.0 / (1.0 + np.exp(-np.clip(z, -80.0, 80.0)))  # float32: no overflow

    def without_context(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """For a mention with one candidate (whose rank cannot change), the (score, confidence)
        when the NIL decision is the same for every similarity in ``sim_range``, else None
        (the context must be encoded). The confidence reported is the one at the typical
        similarity; ``feats`` are the features without similarity."""
        if len(feats) != 1:
            return None
        f = feats.copy()
        f[:, 2] = 0.0  # the gap to the best candidate is 0 for the only one
        sides = []
        for sim in self.sim_range:
            f[:, 1] = sim
            sides.append(bool(self.score(f)[1][0] >= self.threshold))
        if sides[0] != sides[1]:
            return None
        f[:, 1] = self.sim_typical
        return self.score(f)


def rank(z: np.ndarray, priors: np.ndarray, qids: list[str]) -> list[int]:
    """Candidate order: score desc, prior desc, QID (numeric part) asc."""

    def qkey(q: str) -> tuple[int, str]:
        return (int(q[1:]), q) if q[1:].isdigit() else (1 << 62, q)

    return sorted(range(len(z)), key=lambda i: (-float(z[i]), -float(priors[i]), qkey(qids[i])))
