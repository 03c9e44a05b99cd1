"""Calibrate a bundle's score fusion on Wikipedia anchors, with no annotated data set.

A bundle without annotated training data that may ship (the embedded default bundle) still
needs a confidence that means something: with hand-set weights, a wrong single candidate
("El presidente visitó París" -> a Chilean department store) scores as high as a right one.
Wikipedia text is redistributable (CC BY-SA) and ships inside registry packages (gensim's
test data holds English and Bulgarian article samples), and its links say which article a
name refers to. What they do not say is the Wikidata QID, and a registry-built KB has no
sitelinks, so the gold of each anchor whose surface has candidates is decided by the KB's own
names, conservatively:

- the link target's title (redirects of the same sample followed) is the English label of a
  candidate or its label plus " language" -> that candidate is the gold entity; failing
  that, a candidate with the title as an exact alias (no fuzzy step); where several match,
  the first non-brand in candidate order;
- the only matches are brands (a brand named "Hermes", "Helios" or "Argos" is rarely the
  article of that title, but "Coca-Cola" is): the gold is unknown, the anchor is skipped;
- no candidate is named so -> the gold is NIL for this KB (the anchor names something the KB
  lacks, which is what most names in news are for a KB without people or cities).

The mentions then go through ``xned.export.experts.calibrate`` like annotated ones. Only the fitted
numbers (a few weights, a bias, a threshold) go into the bundle, never the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xned.engine import layout as L
from xned.engine.linker import Linker
from xned.engine.normalize import normalize
from xned.export.experts.calibrate import calibrate_on
from xned.export.manifest import update_manifest
from xned.export.training_docs import UNRESOLVED, TrainDoc
from xned.export.wikimedia import dump_language, iter_pages, plain_text_with_links, wiki_title
from xned.logs import Log, silent

if TYPE_CHECKING:
    from xned.engine.linker import Linker

#: Characters of each article's plain text that are used (the lead holds most links).
MAX_CHARS = 6000
#: KB types whose label is taken as proof only when no other type matches.
AMBIGUOUS_TYPES = frozenset({"brand"})


def _pages(path: Path) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    """(language, redirects, [(title, wikitext)]) of a small XML sample."""
    lang = ["en"]
    redirects: dict[str, str] = {}
    pages: list[tuple[str, str]] = []

    def on_dbname(name: str) -> None:
        lang[0] = dump_language(name) or lang[0]

    for page in iter_pages(Path(path), on_dbname):
        if page.ns != "0":
            continue
        if page.redirect:
            redirects[wiki_title(page.title)] = wiki_title(page.redirect)
        else:
            pages.append((wiki_title(page.title), page.text))
    return lang[0], redirects, pages


def gold_for(
    linker: Linker, surface: str, target: str, lang: str, *, ambiguous: frozenset[str] = AMBIGUOUS_TYPES
) -> str | None:
    """The gold QID of an anchor ``surface`` -> ``target`` under the rule of the module
    docstring: a QID, None for NIL, ``UNRESOLVED`` when the anchor must be skipped (no
    candidates, or only a brand of that name)."""
    kb = linker.kb
    ents, _ = kb.lookup(lang, normalize(surface), top_k=linker.top_k)
    if not len(ents):
        return UNRESOLVED
    named_ents, _ = kb.lookup(lang, normalize(target), top_k=1000, fuzzy=False)
    named = set(named_ents.tolist())
    labelled, aliased = [], []  # (is an ambiguous type, order) of candidates named so
    for order, idx in enumerate(ents.tolist()):
        label = kb.record(idx)[0]
        if label == target or label + " language" == target:
            labelled.append((int(kb.type_name(idx) in ambiguous), order))
        elif idx in named:
            aliased.append((int(kb.type_name(idx) in ambiguous), order))
    matches = labelled or aliased  # a label outranks an alias
    if not matches:
        return None
    best = min(matches)
    if best[0]:  # only brands carry the name
        return UNRESOLVED
    return str(kb.qid(int(ents[best[1]])))


def anchor_docs(
    linker: Linker, path: Path, *, max_chars: int = MAX_CHARS, ambiguous: frozenset[str] = AMBIGUOUS_TYPES
) -> Iterator[TrainDoc]:
    """Articles of a Wikipedia XML sample as ``TrainDoc`` with gold decided by ``gold_for``."""
    lang, redirects, pages = _pages(path)
    for title, wikitext in pages:
        text, links = plain_text_with_links(wikitext, max_chars)
        spans = []
        for s, e, target in links:
            t = redirects.get(target, target)
            spans.append((s, e, gold_for(linker, text[s:e], t, lang, ambiguous=ambiguous)))
        if any(q != UNRESOLVED for _, _, q in spans):
            yield TrainDoc(f"{Path(path).name}/{title}", lang, text, spans)


def label_counts(docs: list[TrainDoc]) -> dict[str, int]:
    spans = [q for d in docs for _, _, q in d.spans]
    return {
        "linked": sum(1 for q in spans if q not in (None, UNRESOLVED)),
        "nil": sum(1 for q in spans if q is None),
        "skipped": sum(1 for q in spans if q == UNRESOLVED),
    }


def calibrate_on_anchors(
    bundle: Path,
    samples: list[Path],
    *,
    threads: int | None = None,
    absent: float = 0.0,
    log: Log = silent,
) -> dict[str, Any]:
    """Fit ``bundle/scoring.json`` on the anchors of Wikipedia XML ``samples`` (``absent``:
    also on that fraction of them without their gold entity) and record the sample names and
    label counts in the manifest."""

    bundle = Path(bundle)
    linker = Linker.load(bundle, threads=threads, use_corrections=False)
    docs = [d for p in samples for d in anchor_docs(linker, Path(p))]
    counts = label_counts(docs)
    log(f"anchors: {counts}")
    result = calibrate_on(linker, docs, bundle / L.SCORING, absent=absent, log=log)
    result["fit"]["anchors"] = counts
    update_manifest(
        bundle,
        provenance={"scoring": {"wikipedia_anchors": [Path(p).name for p in samples], **result["fit"]}},
    )
    return result
