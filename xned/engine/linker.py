"""The linking pipeline: mentions -> candidates -> context encoding -> fusion -> NIL."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from xned import config
from xned.engine import layout as L
from xned.engine.bundle import Manifest, bundle_stamp, check_files, check_unlisted, read_manifest
from xned.engine.candidates import CandidateStage
from xned.engine.corrections import NIL, Corrections, make_examples
from xned.engine.decision import Evidence, MentionFeatures, decide
from xned.engine.describe import describe
from xned.engine.detection import MentionFinder
from xned.engine.documents import MentionLike, as_document, error_result
from xned.engine.encoder import Encoder
from xned.engine.entity_vectors import EntityVectors, encoded_candidates
from xned.engine.experts import Experts
from xned.engine.kb import KB
from xned.engine.names import NAMES_K, Names, retrieve
from xned.engine.nil import NilMention, NilStore
from xned.engine.nil import store_dir as nil_store_dir
from xned.engine.normalize import normalize
from xned.engine.pipeline import Candidates, Outcomes, Prepared, Span, SpanVectors, per_document
from xned.engine.scoring import Scorer
from xned.engine.state import Example, state_dir
from xned.engine.tagger import Tagger
from xned.errors import BundleError, InputError
from xned.langs import normalize_lang
from xned.types import DocResult, Document, Link, Mention


@dataclass
class Analysis:
    doc: Document
    mentions: list[MentionFeatures]
    detected: list[MentionFeatures] | None = None  # with ``analyze(..., also_detect=True)``


class Linker:
    """Links mentions in text of any language to Wikidata entities from a bundle."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        kb: KB,
        encoder: Encoder | None,
        experts: Experts | None,
        scorer: Scorer,
        *,
        top_k: int = 30,
        max_chars: int = config.MAX_DOC_CHARS,
        dense_k: int = 10,
        tagger: Tagger | None = None,
        names_k: int = NAMES_K,
    ):
        self.root = root
        self.manifest = manifest
        self.kb = kb
        self.encoder = encoder
        self.experts = experts
        self.scorer = scorer
        self.top_k = top_k
        self.max_chars = max_chars
        self.dense_k = dense_k
        self.entity_vectors = EntityVectors(kb, encoder)
        self.names = Names(kb, encoder, names_k)
        self.finder = MentionFinder(
            kb, tagger, encoder, lambda: self.corrections.taught_keys() if self.corrections is not None else None
        )
        self.corrections: Corrections | None = None
        self.nil: NilStore | None = None  # NIL clustering (``load(nil_ids=True)``)
        self.stage = CandidateStage(kb, self.finder, lambda: self.corrections, top_k, max_chars)
        self._load_args: dict[str, Any] = {}
        #: the bundle's manifest as loaded (``bundle_stamp``): a different one means the bundle changed
        self.stamp: tuple[int, ...] | None = None

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
        dense_k: int = 10,
        names_k: int = NAMES_K,
        use_corrections: bool = True,
        state: str | Path | None = None,
        prefetch: bool = False,
        detection: str = "auto",
        nil_ids: bool = False,
    ) -> Linker:
        """Open a bundle (None = ``$XNED_BUNDLE`` or the embedded default bundle).

        Arrays are memory-mapped; the ONNX session starts on first use. ``verify`` checks
        every file's sha256 against the manifest (otherwise sizes only). Where the bundle has
        a dense index (``kb/dense.usearch``), each mention also gets up to ``dense_k``
        candidates retrieved by its vector in context, and with a name index up to ``names_k``
        by its string (``xned.engine.names``; 0 switches either off). The analyst's
        corrections of this bundle in the state directory (``state``, else ``$XNED_STATE``,
        else the user data directory; see ``xned.engine.state``) are applied unless
        ``use_corrections`` is False. ``prefetch`` creates the ONNX session in a thread at
        once (``xned link``, the worker pool), while the KB and tokenizer load. ``detection`` chooses
        how mentions are found when none are given: ``model`` (the bundle's trained detector,
        ``detector/``), ``rules`` (alias-table matches), ``auto`` (the model where the bundle
        has one). With ``nil_ids`` every NIL mention gets a local identity shared across
        documents (``xned.engine.nil``; kept in the state directory).
        """
        args = {k: v for k, v in locals().items() if k not in ("cls", "bundle")}
        root = Path(bundle) if bundle is not None else config.default_bundle_path()
        manifest = read_manifest(root)
        check_files(manifest, verify=verify)  # before any file is opened: paths stay inside the bundle
        check_unlisted(manifest)  # and only listed files are there to be opened
        encoder: Encoder | None = None
        if (root / L.ENCODER / L.ENCODER_CONFIG).is_file() or (root / L.ENCODER).exists():
            encoder = Encoder(root / L.ENCODER, providers=providers, threads=threads)
            encoder.check_providers()
            if prefetch:
                encoder.prefetch()
        kb = KB(root / L.KB)
        if encoder is None and variant != "prior":
            warnings.warn(
                f"Bundle {root} has no encoder: mentions are linked by prior only (lookups work as usual). "
                f"Add one with: xned kb build ... --encoder DIR",
                RuntimeWarning,
                stacklevel=2,
            )
        _ = kb.dense  # a broken dense index is an error of the bundle, found now
        experts = Experts(root / L.EXPERTS) if (root / L.EXPERTS / L.ExpertsDir.META).exists() else None
        scorer = Scorer.load(root / L.SCORING, variant)
        if threshold is not None:
            scorer.threshold = threshold
        if top_k < 1:
            raise InputError(f"top_k must be at least 1 (got {top_k}).")
        if dense_k < 0 or names_k < 0:
            raise InputError(f"dense_k and names_k must be 0 or more (got {dense_k}, {names_k}).")
        tagger = Tagger.open(root, encoder, detection)
        linker = cls(
            root,
            manifest,
            kb,
            encoder,
            experts,
            scorer,
            top_k=top_k,
            max_chars=max_chars,
            dense_k=dense_k,
            tagger=tagger,
            names_k=names_k,
        )
        if use_corrections:
            dim = encoder.configured_dim if encoder is not None else None  # corrections of another length: skipped
            linker.corrections = Corrections.open(root, state, linker._base_scores, kb.index, scorer.reach, dim)
        if nil_ids:
            linker.nil = NilStore(nil_store_dir(state_dir(state), root))
        linker._load_args = args
        linker.stamp = bundle_stamp(root)
        return linker

    def reload(self) -> Linker:
        """The bundle loaded anew, with the options this linker was loaded with (after ``xned
        kb add`` or ``xned nil promote`` changed it: ``stamp`` tells)."""
        return type(self).load(self.root, **self._load_args)

    @property
    def evidence(self) -> Evidence:
        """What features are computed from (the linker's KB, experts and scorer as they are now)."""
        return Evidence(self.kb, self.experts, self.scorer, self.entity_vectors, self.finder.rare)

    @property
    def tagger(self) -> Tagger | None:
        """The trained mention detector (None: rule-based detection)."""
        return self.finder.tagger

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

    def link_stream(
        self,
        docs: Iterable[Document | str | dict[str, Any] | DocResult],
        *,
        lang: str | None = None,
        given_spans: bool = True,
        candidates: bool = False,
        chunk_size: int = 64,
    ) -> Iterator[DocResult]:
        """Yield one ``DocResult`` per input, in input order, holding at most ``chunk_size``
        documents at a time (memory does not grow with the input). A document that cannot be
        linked gets ``error`` set and the stream goes on; a ``DocResult`` in the input (a
        line the caller could not read) passes through as it is."""
        chunk: list[Document | str | dict[str, Any] | DocResult] = []
        for doc in docs:
            chunk.append(doc)
            if len(chunk) >= chunk_size:
                yield from self._process(chunk, lang, given_spans, candidates)
                chunk = []
        if chunk:
            yield from self._process(chunk, lang, given_spans, candidates)

    link_batch = link_stream  # the batch API is the stream over a list

    def lookup(self, surface: str, lang: str | None = None, top_k: int | None = None) -> list[tuple[str, str, float]]:
        """(qid, label, prior) candidates of a surface string, for debugging."""
        lang = normalize_lang(lang)
        self.kb.check_lang(lang)
        self.stage.check_table(lang)
        ents, pri = self.kb.lookup(lang, normalize(surface), top_k=top_k or self.top_k)
        return [(self.kb.qid(e), self.kb.record(e)[0], float(p)) for e, p in zip(ents, pri, strict=True)]

    # -- pipeline ---------------------------------------------------------------------------
    def analyze(
        self,
        docs: Sequence[Document | str | dict[str, Any] | DocResult],
        lang: str | None = None,
        given_spans: bool = True,
        *,
        also_detect: bool = False,
        skip_decided: bool = False,
        detection: str | None = None,
    ) -> list[Analysis | DocResult]:
        """Mentions with their candidate features (no decision), for evaluation and
        calibration: one ``Analysis`` per document, or a ``DocResult`` carrying the error.
        With ``also_detect`` the rule-detected mentions are analysed too
        (``Analysis.detected``), sharing one encoder pass with the given ones. With
        ``skip_decided`` mentions whose decision cannot depend on the context
        (``Scorer.without_context``) are not encoded. ``detection`` (``model`` or ``rules``)
        overrides how this linker detects mentions where none are given."""
        return self._analyze(list(docs), lang, given_spans, also_detect, skip_decided, detection)

    def _needs_context(self, doc: Document, c: Candidates, ev: Evidence) -> bool:
        if not len(c.ents):
            return False
        if len(c.ents) > 1 or (self.corrections is not None and self.corrections.covers(c.key)):
            return True
        f = ev.features(doc.lang, c, None)
        return self.scorer.without_context(f.matrix(self.scorer, context=False)) is None

    def _analyze(
        self,
        raw_docs: list[Any],
        lang: str | None,
        given: bool,
        also_detect: bool = False,
        skip_decided: bool = False,
        detection: str | None = None,
    ) -> list[Analysis | DocResult]:
        if self.corrections is not None:
            self.corrections.sync()  # another process may have taught something
        if detection is None:
            detection = "model" if self.tagger is not None else "rules"
        elif detection == "model" and self.tagger is None:
            raise InputError(f"Bundle {self.root} was loaded without a trained mention detector.")
        batch, failed = self.stage.prepare(raw_docs, lang, given, also_detect, detection)
        use_vectors = (
            self.encoder is not None
            and self.scorer.variant != "prior"
            and (self.kb.has_vectors or self.experts is not None)
        )
        if use_vectors:
            # with dense or name retrieval every mention is encoded: its vectors find candidates
            dense = (self.dense_k > 0 and self.kb.dense is not None) or self.names.index is not None
            # with NIL identities every mention is encoded: a NIL mention's context places it
            every = dense or self.nil is not None
            for i, exc in self._encode(batch, every, skip_decided).items():
                failed[i] = error_result(batch.pop(i).doc, lang, exc)
            if dense:
                for i, exc in retrieve(self.kb, self.names, self.dense_k, batch, self.top_k).items():
                    failed[i] = error_result(batch.pop(i).doc, lang, exc)
            self.entity_vectors.prefetch(encoded_candidates(batch.values()))
        out: list[Analysis | DocResult] = []
        for i in range(len(raw_docs)):
            if i in failed:
                out.append(failed[i])
                continue
            p, ev = batch[i], self.evidence
            vecs = p.vectors or {}
            feats = [[ev.features(p.doc.lang, c, vecs.get(c.span)) for c in cands] for cands in p.sets]
            out.append(Analysis(p.doc, feats[0], feats[1] if also_detect else None))
        return out

    def _encode(self, batch: dict[int, Prepared], every: bool, skip_decided: bool) -> dict[int, Exception]:
        """The vectors in context of the mentions of ``batch`` (``every`` one; else those with
        candidates and, with ``skip_decided``, only those whose decision needs the context) in
        one batched encoder pass, beside those the trained detector gave; returns the documents
        whose pass failed, with the exception."""
        spans: dict[int, list[Span]] = {}
        ev = self.evidence
        for i, p in batch.items():
            p.vectors = dict(p.detected) if p.detected else None
            wanted = {
                c.span
                for c in p.mentions()
                if c.span not in p.detected
                and (every or (len(c.ents) and (not skip_decided or self._needs_context(p.doc, c, ev))))
            }
            if wanted:
                spans[i] = sorted(wanted)

        def run(idx: list[int]) -> dict[int, SpanVectors]:
            assert self.encoder is not None
            arrs = self.encoder.embed_mentions([batch[i].doc.text for i in idx], [spans[i] for i in idx])
            return {i: dict(zip(spans[i], arr, strict=True)) for i, arr in zip(idx, arrs, strict=True)}

        encoded = per_document(sorted(spans), run) if spans else Outcomes[SpanVectors]()
        for i, vecs in encoded.done.items():
            batch[i].vectors = {**(batch[i].vectors or {}), **vecs}
        return encoded.failed

    def _process(self, raw_docs: list[Any], lang: str | None, given: bool, with_cands: bool) -> list[DocResult]:
        out: list[DocResult] = []
        nil: list[NilMention] = []
        for item in self._analyze(raw_docs, lang, given, skip_decided=True):
            if isinstance(item, DocResult):
                out.append(item)
                continue
            try:
                links = tuple(self.decide(f, self.scorer, with_cands) for f in item.mentions)
                out.append(DocResult(item.doc.id, item.doc.lang, item.doc.text, links))
                if self.nil is not None:
                    nil += [
                        NilMention(len(out) - 1, f.mention.start, f.mention.end, f.mention.text, f.vector)
                        for f, lk in zip(item.mentions, links, strict=True)
                        if lk.qid is None
                    ]
            except Exception as exc:
                out.append(error_result(item.doc, lang, exc))
        if self.nil is not None and nil:
            ids = self.nil.assign(nil, [r.text for r in out], [r.id for r in out])
            out = [
                r
                if r.error is not None
                else replace(r, links=tuple(replace(lk, nil_id=ids.get((i, lk.start, lk.end))) for lk in r.links))
                for i, r in enumerate(out)
            ]
        return out

    def decide(self, f: MentionFeatures, scorer: Scorer, with_cands: bool = False) -> Link:
        """The link (or NIL) for one analysed mention under ``scorer``, corrections applied."""
        fix = self.corrections if scorer.variant == "fused" else None
        return decide(self.kb, f, scorer, with_cands, fix)

    # -- corrections ------------------------------------------------------------------------
    def teach(self, text: str, start: int, end: int, qid: str | None, lang: str | None = None) -> Example:
        """Correct one mention: ``text[start:end]`` refers to ``qid`` (None: to no entity of
        the KB). Stored in the state directory and used at once, by this linker and by every
        one loaded later on this bundle; its mention string's word expert is refit."""
        doc = {"text": text, "lang": lang, "mentions": [{"start": start, "end": end, "qid": qid}]}
        return self.teach_batch([doc])[0]

    def teach_batch(self, docs: Iterable[dict[str, Any] | Document]) -> list[Example]:
        """``teach`` for canonical documents whose mentions carry ``qid`` (null = NIL)."""
        if self.corrections is None:
            raise InputError("Corrections are switched off for this linker (loaded with use_corrections=False).")
        if self.encoder is None:
            raise InputError(f"Bundle {self.root} has no encoder; corrections need one to encode the context.")
        examples = make_examples(docs, self.encoder, self.kb, self.max_chars)
        return self.corrections.add(examples, self.root)

    def _base_scores(self, lang: str | None, key: str, mention: str, vec: np.ndarray) -> tuple[list[str], np.ndarray]:
        """A taught example's classes (candidate QIDs, then NIL) and the scorer's logits."""
        ents, pri = self.kb.lookup(lang, key, top_k=self.top_k)
        if self.corrections is not None:
            ents, pri = self.corrections.extend(key, ents, pri)
        # f.ents: the candidates the features kept (a person's name keeps only people)
        stem = len(ents) > 0 and self.kb.stem_only(lang, key)  # taught examples are given spans: stems apply
        f = self.evidence.features(lang, Candidates(Mention(0, len(mention), mention), key, ents, pri, stem=stem), vec)
        z, _ = self.scorer.score(f.matrix(self.scorer))
        t = min(max(self.scorer.threshold, 1e-6), 1 - 1e-6)
        return [self.kb.qid(int(e)) for e in f.ents] + [NIL], np.append(z, np.log(t / (1 - t))).astype(np.float32)

    def info(self) -> dict[str, Any]:  # -- introspection
        """The bundle's summary (``xned kb info``, ``GET /info``)."""
        return describe(self)


__all__ = ["BundleError", "Linker", "as_document"]
