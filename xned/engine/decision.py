"""One mention's decision: rank its candidates with the scorer (and the analyst's
corrections, where its mention string has any), then link the best or say NIL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xned.engine.corrections import Corrections
from xned.engine.entity_vectors import EntityVectors
from xned.engine.experts import Experts
from xned.engine.kb import KB
from xned.engine.normalize import normalize
from xned.engine.person import is_person_type, reads_as_person
from xned.engine.pipeline import Candidates
from xned.engine.scoring import Scorer, rank
from xned.types import Candidate, Link, Mention


@dataclass(slots=True)
class MentionFeatures:
    """One mention's candidates (global entity indices, best prior first) and features."""

    mention: Mention
    key: str  # the normalized mention string
    ents: np.ndarray
    priors: np.ndarray
    sims: np.ndarray | None
    expert: np.ndarray | None
    vector: np.ndarray | None
    hub: np.ndarray | None = None
    dense: np.ndarray | None = None  # 1.0 where the candidate came from dense retrieval only
    name: np.ndarray | None = None  # cosine of the mention string and the candidate's label
    partial: np.ndarray | None = None  # 1.0 for an alias candidate found inside the mention
    stem: np.ndarray | None = None  # 1.0 for an alias candidate found only by the mention's stem key

    def matrix(self, scorer: Scorer, context: bool = True) -> np.ndarray:
        """The scorer's feature matrix; without ``context``, no similarity and no retrieval
        flag (``Scorer.without_context``)."""
        return scorer.features(
            self.priors,
            self.sims if context else None,
            self.expert,
            self.hub,
            self.dense if context else None,
            self.name,
            self.partial,
            self.stem,
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a mention's features are computed from: the KB, the word experts, the scorer
    (its typical cosine) and the entity vectors (which embed those the KB lacks; None: the
    KB's stored vectors only)."""

    kb: KB
    experts: Experts | None
    scorer: Scorer
    entity_vectors: EntityVectors | None = None
    #: whether a word is rare (``MentionFinder.rare``): person-name evidence; None: the lexicon alone
    rare: Callable[[str], bool] | None = None

    def _known(self, lang: str | None) -> Callable[[str], bool]:
        """Whether a word names something in the KB on its own (an exact alias)."""
        kb = self.kb

        def known(word: str) -> bool:
            ents, _ = kb.lookup(lang, normalize(word), top_k=1, fuzzy=False, stems=False, contained=False)
            return bool(len(ents))

        return known

    def features(self, lang: str | None, c: Candidates, vec: np.ndarray | None) -> MentionFeatures:
        """A mention's features: its candidates' cosines to its vector in context ``vec``, its
        word expert's probabilities (where one applies) and the candidates' hubness. A
        retrieved-only candidate (``c.dense`` = 1) is never embedded at run time: dense hits
        have a stored vector, and a name hit without one gets the typical cosine (embedding
        every name hit of a ``--vectors ambiguous`` bundle cost more than the whole context
        pass)."""
        kb, experts = self.kb, self.experts
        ents, pri, dense, name, key = c.ents, c.priors, c.dense, c.name, c.key
        sims = expert_p = partial = stem = None
        if len(ents) and kb.contained_only(lang, key):
            alias = np.ones(len(ents), bool) if dense is None else dense == 0
            if reads_as_person(c.mention.text, self.rare, known=self._known(lang), lang=lang):
                # The name inside a person's name ("Ford" in "Henry Ford") names someone else: of
                # the candidates found through it only people stay (a namesake is still a person);
                # retrieved candidates are no pieces of the name and stay too.
                keep = ~alias | np.array([is_person_type(kb.type_name(int(e))) for e in ents], bool)
                if not keep.all():
                    ents, pri, alias = ents[keep], pri[keep], alias[keep]
                    dense = None if dense is None else dense[keep]
                    name = None if name is None else name[keep]
            partial = alias.astype(np.float32) if len(ents) else None
        if c.stem and len(ents):  # alias candidates only: retrieved ones came by no key
            stem = np.ones(len(ents), np.float32) if dense is None else (dense == 0).astype(np.float32)
        if len(ents) and experts is not None and (vec is not None or len(ents) == 1):
            model = experts.model_for(lang, key, ents)
            if model >= 0:
                # one candidate: the softmax over the expert's classes among them is 1 or unknown
                expert_p = experts.predict(model, vec, ents) if vec is not None else experts.known(model, ents)
        if len(ents) and vec is not None and kb.has_vectors:
            alias = None if dense is None else dense == 0
            ev = kb.vectors(ents) if self.entity_vectors is None else self.entity_vectors.get(ents, alias)
            if ev is not None:
                sims = ev @ vec
                none = ~ev.any(axis=1)  # no vector and no encoder to embed it: typical cosine
                if none.any():
                    sims[none] = self.scorer.sim_typical
        hub = experts.hubness_of(ents) if experts is not None and len(ents) else None
        return MentionFeatures(c.mention, key, ents, pri, sims, expert_p, vec, hub, dense, name, partial, stem)


def decide(
    kb: KB, f: MentionFeatures, scorer: Scorer, with_cands: bool = False, corrections: Corrections | None = None
) -> Link:
    """The link (or NIL) for one analysed mention under ``scorer``."""
    m, ents, pri, sims = f.mention, f.ents, f.priors, f.sims
    if len(ents) == 0:
        return Link(m.start, m.end, m.text, None)
    key = f.key
    fix = corrections is not None and f.vector is not None and corrections.covers(key)
    one = len(ents) == 1 and not fix
    decided = scorer.without_context(f.matrix(scorer, context=False)) if one else None
    z, conf = decided if decided is not None else scorer.score(f.matrix(scorer))
    qids = [kb.qid(int(e)) for e in ents]
    corrected = False
    if fix:
        assert corrections is not None and f.vector is not None
        adjusted = corrections.adjust(key, qids, f.vector, z)
        if adjusted is not None:
            z, conf, corrected = adjusted, 1.0 / (1.0 + np.exp(-adjusted)), True
    order = rank(z, pri, qids)
    best = order[0]
    cand_list: tuple[Candidate, ...] = ()
    if with_cands:
        cand_list = tuple(
            Candidate(
                qids[k],
                kb.record(int(ents[k]))[0],
                round(float(conf[k]), 6),
                round(float(pri[k]), 6),
                None if sims is None else round(float(sims[k]), 6),
                None if f.expert is None or np.isnan(f.expert[k]) else round(float(f.expert[k]), 6),
            )
            for k in order
        )
    score = float(conf[best])
    if score < scorer.threshold:
        return Link(
            m.start,
            m.end,
            m.text,
            None,
            score=round(score, 6),
            prior=round(float(pri[best]), 6),
            candidates=cand_list,
            corrected=corrected,
        )
    label, desc = kb.record(int(ents[best]))
    return Link(
        m.start,
        m.end,
        m.text,
        qids[best],
        label,
        desc,
        round(score, 6),
        round(float(pri[best]), 6),
        cand_list,
        corrected,
    )
