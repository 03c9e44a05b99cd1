"""The first stage of linking: documents -> their mentions (given, rule-detected, or found
by the trained detector in its encoder pass) with their candidates (``pipeline.Prepared``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xned.engine.corrections import Corrections
from xned.engine.detection import MentionFinder
from xned.engine.documents import as_document, as_mention, check_text, error_result
from xned.engine.kb import KB
from xned.engine.normalize import normalize
from xned.engine.pipeline import Candidates, Prepared
from xned.engine.propagation import propagate
from xned.errors import InputError
from xned.langs import suggest
from xned.types import DocResult, Document, Mention


class CandidateStage:
    """Prepares documents for the encoder pass: validated, their mentions found, each with
    its normalized key and up to ``top_k`` candidates (the analyst's taught entities added)."""

    def __init__(
        self,
        kb: KB,
        finder: MentionFinder,
        corrections: Callable[[], Corrections | None],
        top_k: int,
        max_chars: int,
    ):
        self.kb = kb
        self.finder = finder
        self.corrections = corrections
        self.top_k = top_k
        self.max_chars = max_chars

    def check_table(self, lang: str | None) -> None:
        if lang is not None and lang not in self.kb.languages:
            raise InputError(
                f"No alias table for language {lang!r} in bundle {self.kb.root.parent} "
                f"({suggest(lang, self.kb.languages)}). Link without --lang to use every table, "
                f"or build one with: xned kb build ... --langs {lang}"
            )

    def prepare(
        self, raw_docs: list[Any], lang: str | None, given: bool, also_detect: bool, detection: str
    ) -> tuple[dict[int, Prepared], dict[int, DocResult]]:
        """Every document prepared (by its index in ``raw_docs``), with the vectors of the
        mentions the trained detector found; and the error record of each that failed (a
        ``DocResult`` in ``raw_docs``, a line the caller could not read, passes through)."""
        failed: dict[int, DocResult] = {}
        ready: dict[int, tuple[Document, list[Mention] | None, list[list[Mention]]]] = {}
        for i, raw in enumerate(raw_docs):
            if isinstance(raw, DocResult):
                failed[i] = raw
                continue
            try:
                doc, ments = self._document(raw, lang, given, detection)
                ready[i] = (doc, ments, [self.finder.rules(doc)] if also_detect else [])
            except Exception as exc:  # one bad document never stops the others
                failed[i] = error_result(raw, lang, exc)
        tagged = self.finder.tag({i: doc for i, (doc, ments, _) in ready.items() if ments is None})
        out: dict[int, Prepared] = {}
        for i, (doc, ments, extra) in ready.items():
            try:
                if i in tagged.failed:
                    raise tagged.failed[i]
                found = tagged.done.get(i, {})
                spans_given = given and doc.mentions is not None  # else detected (``_document``)
                if ments is None:
                    ments = [Mention(s, e, doc.text[s:e]) for s, e in found]
                sets = [ments, *extra]
                # stem keys for given spans only: a detected "Wiener" is no Vienna, a detected
                # "Феррари" no Ferrara
                cands = [self.candidates(doc, m, spans_given and j == 0) for j, m in enumerate(sets)]
                out[i] = Prepared(doc, cands, detected=found)
            except Exception as exc:
                failed[i] = error_result(doc, lang, exc)
        return out, failed

    def candidates(self, doc: Document, ments: list[Mention], given: bool) -> list[Candidates]:
        """Candidate generation (stem keys for ``given`` spans only, see ``KB.lookup``), with
        document-level propagation of longer mentions."""
        keys = [normalize(m.text) for m in ments]
        per = self.kb.lookup_all(doc.lang, keys, top_k=self.top_k, stems=given)
        fix = self.corrections()
        if fix is not None and fix.by_key:
            per = [fix.extend(k, *p) for k, p in zip(keys, per, strict=True)]
        own = per
        per = propagate(keys, per, self.top_k, inner=lambda k: self.kb.contained_names(doc.lang, k))
        # candidates of the stem key alone, not joined by a longer mention's (the ``stem`` feature)
        stem = [
            given and p is o and len(p[0]) > 0 and self.kb.stem_only(doc.lang, k)
            for k, p, o in zip(keys, per, own, strict=True)
        ]
        return [
            Candidates(m, k, ents, pri, stem=s) for m, k, (ents, pri), s in zip(ments, keys, per, stem, strict=True)
        ]

    def _document(
        self, raw: Document | str | dict[str, Any], lang: str | None, given: bool, detection: str
    ) -> tuple[Document, list[Mention] | None]:
        """The document and its mentions: given, rule-detected, or None when the trained
        detector finds them during the encoder pass."""
        doc = as_document(raw, lang)
        check_text(doc.text, self.max_chars)
        self.kb.check_lang(doc.lang)
        self.check_table(doc.lang)
        if doc.mentions is not None and given:
            return doc, [as_mention(m, doc.text) for m in doc.mentions]
        return doc, None if detection == "model" else self.finder.rules(doc)
