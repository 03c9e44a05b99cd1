"""The linking pipeline: mentions -> candidates -> context encoding -> fusion -> NIL."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xned import config
from xned.engine.bundle import Manifest, check_files, read_manifest
from xned.engine.encoder import Encoder
from xned.engine.experts import Experts
from xned.engine.kb import KB
from xned.engine.mentions import Detector
from xned.engine.morph import suffixes
from xned.engine.normalize import normalize
from xned.engine.scoring import Scorer, rank
from xned.errors import BundleError, InputError, XnedError
from xned.types import Candidate, DocResult, Document, Link, Mention

MentionLike = Mention | tuple[int, int] | dict[str, Any]


def _as_mention(m: MentionLike, text: str) -> Mention:
    s: Any
    e: Any
    if isinstance(m, Mention):
        s, e = m.start, m.end
    elif isinstance(m, dict):
        s, e = m.get("start"), m.get("end")
    else:
        s, e = m
    if not isinstance(s, int) or not isinstance(e, int) or isinstance(s, bool) or isinstance(e, bool):
        raise InputError(f"Mention span ({s!r}, {e!r}) must be two integers (character offsets).")
    if not 0 <= s < e <= len(text):
        raise InputError(
            f"Mention span [{s}, {e}) is out of range for a text of {len(text)} characters; "
            f"spans are character offsets with 0 <= start < end <= len(text)."
        )
    return Mention(s, e, text[s:e])


def as_document(doc: Document | str | dict[str, Any], lang: str | None = None) -> Document:
    """Accepts a ``Document``, a plain string, or a canonical-JSONL dict."""
    if isinstance(doc, Document):
        return doc
    if isinstance(doc, str):
        return Document(text=doc, lang=lang)
    if isinstance(doc, dict):
        ments = doc.get("mentions")
        return Document(
            text=doc.get("text"),  # type: ignore[arg-type]  # validated in _prepare
            lang=doc.get("lang") or lang,
            id=None if doc.get("id") is None else str(doc.get("id")),
            mentions=None if ments is None else tuple(ments),  # type: ignore[arg-type]
        )
    raise InputError(f"Cannot link a {type(doc).__name__}: pass a string, a dict or a Document.")


@dataclass
class MentionFeatures:
    """One mention's candidates (global entity indices, best prior first) and features."""

    mention: Mention
    ents: np.ndarray
    priors: np.ndarray
    sims: np.ndarray | None
    expert: np.ndarray | None
    vector: np.ndarray | None
    hub: np.ndarray | None = None


@dataclass
class Analysis:
    doc: Document
    mentions: list[MentionFeatures]
    detected: list[MentionFeatures] | None = None  # with ``analyze(..., also_detect=True)``


def _error_result(raw: Any, lang: str | None, exc: Exception) -> DocResult:
    doc_id = raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", None)
    doc_lang = raw.get("lang") if isinstance(raw, dict) else getattr(raw, "lang", lang)
    text = raw if isinstance(raw, str) else (raw.get("text") if isinstance(raw, dict) else getattr(raw, "text", ""))
    return DocResult(
        None if doc_id is None else str(doc_id), doc_lang, text if isinstance(text, str) else "", error=str(exc)
    )


def _tokens(key: str) -> list[str]:
    return [t for t in re.split(r"[\s.,'’\-]+", key) if t]


def propagate(
    keys: list[str], per: list[tuple[np.ndarray, np.ndarray]], top_k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Document-level propagation: a mention whose words are a contiguous part of a longer
    mention of the same document ("Obama" after "Barack Obama", "Annan" after "Kofi Annan"),
    or its acronym ("UN" after "United Nations"), inherits that mention's candidates: the
    priors become half the longer mention's plus half its own (all of the longer mention's
    when it has none). The longest such mention is used, earlier ones first."""
    toks = [_tokens(k) for k in keys]
    out = list(per)
    for i, ti in enumerate(toks):
        if not ti:
            continue
        best = -1
        for j, tj in enumerate(toks):
            if j == i or len(tj) <= len(ti) or not len(per[j][0]):
                continue
            n = len(ti)
            part = any(tj[a : a + n] == ti for a in range(len(tj) - n + 1))
            acro = n == 1 and len(ti[0]) >= 2 and len(tj) >= 2 and ti[0] == "".join(t[0] for t in tj)
            if not (part or acro):
                continue
            if best < 0 or len(tj) > len(toks[best]) or (len(tj) == len(toks[best]) and j < i <= best):
                best = j
        if best < 0:
            continue
        ents_b, pri_b = per[best]
        ents_i, pri_i = per[i]
        acc: dict[int, float] = {}
        for e, p in zip(ents_b.tolist(), pri_b.tolist(), strict=True):
            acc[e] = acc.get(e, 0.0) + 0.5 * p + (0.5 if not len(ents_i) else 0.0) * p
        for e, p in zip(ents_i.tolist(), pri_i.tolist(), strict=True):
            acc[e] = acc.get(e, 0.0) + 0.5 * p
        items = sorted(acc.items(), key=lambda kv: -kv[1])[:top_k]
        out[i] = (np.array([e for e, _ in items], np.int32), np.array([p for _, p in items], np.float32))
    return out


class Linker:
    """Links mentions in text of any language to Wikidata entities from a bundle."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        kb: KB,
        encoder: Encoder,
        experts: Experts | None,
        scorer: Scorer,
        *,
        top_k: int = 30,
        max_chars: int = config.MAX_DOC_CHARS,
    ):
        self.root = root
        self.manifest = manifest
        self.kb = kb
        self.encoder = encoder
        self.experts = experts
        self.scorer = scorer
        self.top_k = top_k
        self.max_chars = max_chars
        self._detectors: dict[str | None, Detector] = {}

    @classmethod
    def load(
        cls,
        bundle: str | Path | None = None,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        verify: bool = False,
        variant: str = "fused",
        top_k: int = 30,
        threshold: float | None = None,
        max_chars: int = config.MAX_DOC_CHARS,
    ) -> Linker:
        """Open a bundle (None = ``$XNED_BUNDLE`` or the embedded default bundle).

        Arrays are memory-mapped; the ONNX session starts on first use. ``verify`` checks
        every file's sha256 against the manifest (otherwise sizes only).
        """
        root = Path(bundle) if bundle is not None else config.default_bundle_path()
        manifest = read_manifest(root)
        check_files(manifest, verify=verify)
        kb = KB(root / "kb")
        encoder = Encoder(root / "encoder", providers=providers, threads=threads)
        experts = Experts(root / "experts") if (root / "experts" / "meta.json").exists() else None
        scorer = Scorer.load(root / "scoring.json", variant)
        if threshold is not None:
            scorer.threshold = threshold
        if top_k < 1:
            raise InputError(f"top_k must be at least 1 (got {top_k}).")
        return cls(root, manifest, kb, encoder, experts, scorer, top_k=top_k, max_chars=max_chars)

    # -- public API -------------------------------------------------------------------------
    def link(
        self,
        text: str,
        lang: str | None = None,
        mentions: Sequence[MentionLike] | None = None,
        *,
        candidates: bool = False,
    ) -> list[Link]:
        """Link one text. With ``mentions`` (character spans) only those are linked (NED
        mode); otherwise mentions are detected. Raises ``InputError`` for bad input."""
        doc = Document(text=text, lang=lang, mentions=None if mentions is None else tuple(mentions))  # type: ignore[arg-type]
        result = next(self.link_batch([doc], candidates=candidates))
        if result.error is not None:
            raise InputError(result.error)
        return list(result.links)

    def link_batch(
        self,
        docs: Iterable[Document | str | dict[str, Any]],
        *,
        lang: str | None = None,
        given_spans: bool = True,
        candidates: bool = False,
        chunk_size: int = 64,
    ) -> Iterator[DocResult]:
        """Yield one ``DocResult`` per input document, in input order. A document that
        cannot be linked gets ``error`` set; the batch goes on."""
        chunk: list[Document | str | dict[str, Any]] = []
        for doc in docs:
            chunk.append(doc)
            if len(chunk) >= chunk_size:
                yield from self._process(chunk, lang, given_spans, candidates)
                chunk = []
        if chunk:
            yield from self._process(chunk, lang, given_spans, candidates)

    def lookup(self, surface: str, lang: str | None = None, top_k: int | None = None) -> list[tuple[str, str, float]]:
        """(qid, label, prior) candidates of a surface string, for debugging."""
        self.kb.check_lang(lang)
        self._check_table(lang)
        ents, pri = self.kb.lookup(lang, normalize(surface), top_k=top_k or self.top_k)
        return [(self.kb.qid(e), self.kb.record(e)[0], float(p)) for e, p in zip(ents, pri, strict=True)]

    # -- pipeline ---------------------------------------------------------------------------
    def _check_table(self, lang: str | None) -> None:
        if lang is not None and lang not in self.kb.languages:
            raise InputError(
                f"No alias table for language {lang!r} in bundle {self.root} (has: "
                f"{', '.join(self.kb.languages)}). Link without --lang to use every table, or "
                f"build one with: xned kb build ... --langs {lang}"
            )

    def _detector(self, lang: str | None) -> Detector:
        if lang not in self._detectors:
            tables = [t for t, _ in self.kb.tables_for(lang)]
            self._detectors[lang] = Detector(
                [t.keys for t in tables],
                lambda k: self.kb.link_probability(lang, k),
                fold_tries=[t.fold_keys for t in tables],
                endings=suffixes(lang),
            )
        return self._detectors[lang]

    def _prepare(
        self, raw: Document | str | dict[str, Any], lang: str | None, given: bool
    ) -> tuple[Document, list[Mention]]:
        doc = as_document(raw, lang)
        if not isinstance(doc.text, str):
            raise InputError(f"Document text must be a string (got {type(doc.text).__name__}).")
        if not doc.text.strip():
            raise InputError("Empty text: nothing to link. Pass a non-empty document.")
        if len(doc.text) > self.max_chars:
            raise InputError(
                f"Document of {len(doc.text):,} characters is over the limit of "
                f"{self.max_chars:,}; split it into smaller documents (or raise the limit "
                f"with --max-chars / XNED_MAX_DOC_CHARS)."
            )
        self.kb.check_lang(doc.lang)
        self._check_table(doc.lang)
        if doc.mentions is not None and given:
            ments = [_as_mention(m, doc.text) for m in doc.mentions]
        else:
            ments = [
                Mention(sp.start, sp.end, doc.text[sp.start : sp.end])
                for sp in self._detector(doc.lang).detect(doc.text)
            ]
        return doc, ments

    def analyze(
        self,
        docs: Sequence[Document | str | dict[str, Any]],
        lang: str | None = None,
        given_spans: bool = True,
        *,
        also_detect: bool = False,
    ) -> list[Analysis | DocResult]:
        """Mentions with their candidate features (no decision), for evaluation and
        calibration: one ``Analysis`` per document, or a ``DocResult`` carrying the error.
        With ``also_detect`` the detected mentions are analysed too (``Analysis.detected``),
        sharing one encoder pass with the given ones."""
        return self._analyze(list(docs), lang, given_spans, also_detect)

    def _candidates(self, doc: Document, ments: list[Mention]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Candidate generation, with document-level propagation of longer mentions."""
        keys = [normalize(m.text) for m in ments]
        per = [self.kb.lookup(doc.lang, k, top_k=self.top_k) for k in keys]
        return propagate(keys, per, self.top_k)

    def _analyze(
        self, raw_docs: list[Document | str | dict[str, Any]], lang: str | None, given: bool, also_detect: bool = False
    ) -> list[Analysis | DocResult]:
        prepared: list[tuple[Document, list[list[Mention]]] | DocResult] = []
        for raw in raw_docs:
            try:
                doc, ments = self._prepare(raw, lang, given)
                sets = [ments]
                if also_detect:
                    sets.append(
                        [
                            Mention(sp.start, sp.end, doc.text[sp.start : sp.end])
                            for sp in self._detector(doc.lang).detect(doc.text)
                        ]
                    )
                prepared.append((doc, sets))
            except XnedError as exc:
                prepared.append(_error_result(raw, lang, exc))
        cands: list[list[list[tuple[np.ndarray, np.ndarray]]]] = []
        spans: list[list[tuple[int, int]]] = []  # per document, the spans to encode
        for item in prepared:
            if isinstance(item, DocResult):
                cands.append([])
                spans.append([])
                continue
            doc, sets = item
            per_set = [self._candidates(doc, ments) for ments in sets]
            cands.append(per_set)
            wanted = {
                (m.start, m.end)
                for ments, per in zip(sets, per_set, strict=True)
                for m, (ents, _) in zip(ments, per, strict=True)
                if len(ents)
            }
            spans.append(sorted(wanted))
        # Context encoding: one pass over all windows of the chunk, only for mentions
        # that have candidates.
        vectors: dict[tuple[int, int, int], np.ndarray] = {}
        need = [i for i, sp in enumerate(spans) if sp]
        use_vectors = self.scorer.variant != "prior" and (self.kb.has_vectors or self.experts is not None)
        if need and use_vectors:
            texts = [prepared[i][0].text for i in need]  # type: ignore[index]
            for i, arr in zip(need, self.encoder.embed_mentions(texts, [spans[i] for i in need]), strict=True):
                for (s, e), v in zip(spans[i], arr, strict=True):
                    vectors[(i, s, e)] = v
        out: list[Analysis | DocResult] = []
        for i, item in enumerate(prepared):
            if isinstance(item, DocResult):
                out.append(item)
                continue
            doc, sets = item
            feats = [
                [
                    self._features(doc, m, ents, pri, vectors.get((i, m.start, m.end)))
                    for m, (ents, pri) in zip(ments, per, strict=True)
                ]
                for ments, per in zip(sets, cands[i], strict=True)
            ]
            out.append(Analysis(doc, feats[0], feats[1] if also_detect else None))
        return out

    def _features(
        self, doc: Document, m: Mention, ents: np.ndarray, pri: np.ndarray, vec: np.ndarray | None
    ) -> MentionFeatures:
        sims = expert_p = None
        if len(ents) and vec is not None:
            if self.kb.has_vectors:
                ev = self.kb.vectors(ents)
                sims = None if ev is None else ev @ vec
            if self.experts is not None:
                model = self.experts.model_for(doc.lang, normalize(m.text), ents)
                if model >= 0:
                    expert_p = self.experts.predict(model, vec, ents)
        hub = self.experts.hubness_of(ents) if self.experts is not None and len(ents) else None
        return MentionFeatures(m, ents, pri, sims, expert_p, vec, hub)

    def _process(
        self,
        raw_docs: list[Document | str | dict[str, Any]],
        lang: str | None,
        given: bool,
        with_cands: bool,
    ) -> list[DocResult]:
        out: list[DocResult] = []
        for item in self._analyze(raw_docs, lang, given):
            if isinstance(item, DocResult):
                out.append(item)
                continue
            links = tuple(self.decide(f, self.scorer, with_cands) for f in item.mentions)
            out.append(DocResult(item.doc.id, item.doc.lang, item.doc.text, links))
        return out

    def decide(self, f: MentionFeatures, scorer: Scorer, with_cands: bool = False) -> Link:
        """The link (or NIL) for one analysed mention under ``scorer``."""
        m, ents, pri, sims = f.mention, f.ents, f.priors, f.sims
        if len(ents) == 0:
            return Link(m.start, m.end, m.text, None)
        feats = scorer.features(pri, sims, f.expert, f.hub)
        z, conf = scorer.score(feats)
        qids = [self.kb.qid(int(e)) for e in ents]
        order = rank(z, pri, qids)
        best = order[0]
        cand_list: tuple[Candidate, ...] = ()
        if with_cands:
            cand_list = tuple(
                Candidate(
                    qids[k],
                    self.kb.record(int(ents[k]))[0],
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
            )
        label, desc = self.kb.record(int(ents[best]))
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
        )

    # -- introspection ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        m = self.manifest.data
        sizes = sum(int(f.get("size", 0)) for f in self.manifest.files.values())
        return {
            "bundle": str(self.root),
            "name": m.get("name"),
            "format_version": m.get("format_version"),
            "created_by": m.get("created_by"),
            "languages": self.kb.languages,
            "entities": len(self.kb),
            "aliases": {t.lang: len(t) for t, _ in self.kb.tables_for(None)},
            "overlay": self.kb.overlay is not None,
            "encoder": {k: v for k, v in self.encoder.config.items() if k not in ("model", "tokenizer")},
            "experts": 0 if self.experts is None else len(self.experts),
            "scoring": {
                "weights": self.scorer.weights,
                "bias": self.scorer.bias,
                "threshold": self.scorer.threshold,
            },
            "files": len(self.manifest.files),
            "bytes": sizes,
            "provenance": m.get("provenance", {}),
        }


__all__ = ["BundleError", "Linker", "as_document"]
