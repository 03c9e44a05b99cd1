"""A spaCy pipeline component (extra ``xned[spacy]``): ``nlp.add_pipe("xned", config={...})``.

Where the pipeline has entities (an NER or an entity ruler ran before), their character
spans are linked as given mentions (NED mode); otherwise xned detects its own mentions and
sets ``doc.ents`` (a mention that does not fall on token boundaries, e.g. inside a
Japanese sentence that a blank pipeline keeps as one token, is not made an entity).
Every link, aligned or not, is in ``doc._.xned_links`` (the records of ``xned link -f
jsonl``: character offsets, qid, label, description, score). Each entity gets
``ent.kb_id_`` = the QID ("NIL" where xned says no entity fits) and span extensions
``ent._.xned_label``, ``xned_description``, ``xned_score`` and ``xned_candidates`` (with
``candidates=True``: dicts with qid, label, score, prior, similarity, expert). The bundle
loads lazily in each process, so ``nlp.pipe(..., n_process=N)`` works; the component
pickles without it.

Config: ``bundle`` (path; None = ``$XNED_BUNDLE`` or the default bundle), ``lang`` (None =
the pipeline's language, or detection over every table for the multilingual ``xx``),
``threads`` (ONNX Runtime threads), ``candidates``, ``use_ents`` (False = always detect),
``label`` (the label of entities xned detects itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from xned.records import link_record

if TYPE_CHECKING:
    from xned.engine.linker import Linker

NIL = "NIL"
if not Doc.has_extension("xned_links"):
    Doc.set_extension("xned_links", default=None)
for _name in ("xned_label", "xned_description", "xned_score", "xned_candidates"):
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None)


class XnedComponent:
    def __init__(
        self,
        nlp: Language,
        name: str,
        bundle: str | None,
        lang: str | None,
        threads: int | None,
        candidates: bool,
        use_ents: bool,
        label: str,
    ):
        self.name = name
        self.bundle = bundle
        self.lang = lang or (None if nlp.lang in ("xx", "mul") else nlp.lang)
        self.threads = threads
        self.candidates = candidates
        self.use_ents = use_ents
        self.label = label
        self._linker: Linker | None = None

    @property
    def linker(self) -> Linker:
        if self._linker is None:
            from xned.engine.linker import Linker

            self._linker = Linker.load(self.bundle, threads=self.threads)
        return self._linker

    def __getstate__(self) -> dict[str, Any]:  # worker processes load their own linker
        return {k: v for k, v in self.__dict__.items() if k != "_linker"} | {"_linker": None}

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 32) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._link(batch)
                batch = []
        if batch:
            yield from self._link(batch)

    def _link(self, docs: list[Doc]) -> list[Doc]:
        records = []
        for doc in docs:
            rec: dict[str, Any] = {"text": doc.text, "lang": self.lang}
            if self.use_ents and doc.has_annotation("ENT_IOB"):
                rec["mentions"] = [(e.start_char, e.end_char) for e in doc.ents]
            records.append(rec)
        for doc, rec, res in zip(
            docs, records, self.linker.link_stream(records, candidates=self.candidates), strict=True
        ):
            if res.error is not None:
                raise ValueError(f"xned could not link a document: {res.error}")
            by_span = {(lk.start, lk.end): lk for lk in res.links}
            if "mentions" in rec:
                ents = list(doc.ents)
            else:
                made = [doc.char_span(lk.start, lk.end, label=self.label) for lk in res.links if lk.qid]
                ents = filter_spans([s for s in made if s is not None])
            out = []
            for ent in ents:
                lk = by_span.get((ent.start_char, ent.end_char)) or next(
                    (v for (s, e), v in by_span.items() if ent.start_char <= s and e <= ent.end_char), None
                )
                span = Span(doc, ent.start, ent.end, label=ent.label, kb_id=(lk.qid or NIL) if lk else NIL)
                if lk is not None:
                    span._.xned_label = lk.label
                    span._.xned_description = lk.description
                    span._.xned_score = lk.score
                    span._.xned_candidates = link_record(lk, True)["candidates"]
                out.append(span)
            doc.ents = out
            doc._.xned_links = [link_record(lk, self.candidates) for lk in res.links]
        return docs


@Language.factory(
    "xned",
    default_config={
        "bundle": None,
        "lang": None,
        "threads": 1,
        "candidates": False,
        "use_ents": True,
        "label": "ENTITY",
    },
)
def make_xned(
    nlp: Language,
    name: str,
    bundle: str | None,
    lang: str | None,
    threads: int | None,
    candidates: bool,
    use_ents: bool,
    label: str,
) -> XnedComponent:
    return XnedComponent(nlp, name, bundle, lang, threads, candidates, use_ents, label)
