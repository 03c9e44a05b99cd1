"""How mentions are found where none are given: alias-table matches (``mentions.Detector``,
one per language, rebuilt when an analyst teaches a new string), or the trained detector
(``tagger.Tagger``) fused with those matches in one encoder pass.

Every token of a document goes through the encoder once (``Encoder.encode_documents``, chunk
cuts kept off the rule-based matches). In each chunk the detector head tags the pieces
(``Tagger``); the mentions of the chunk are

1. the detector's spans (a span with no candidate becomes a NIL mention later);
2. the rule-based matches it rejected whose alias stands on its own (``keep`` in
   ``rule_spans``: a high link probability, or a string an analyst taught), where they do
   not overlap a detected span;

and each is pooled from the states at hand into its vector in context, exactly as
``Encoder.embed_mentions`` pools a given span. Document-level consistency: every other
occurrence of a detected surface in the same document (whole words, not inside another
mention) becomes a mention too, with the vector of its first occurrence, so one name is
linked one way throughout the document.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

import marisa_trie
import numpy as np

from xned.engine.chunks import token_spans
from xned.engine.encoder import Encoder
from xned.engine.kb import KB
from xned.engine.mentions import Detector, Span, tokenize
from xned.engine.morph import suffixes
from xned.engine.normalize import CJK_CLASS, inside_katakana_word
from xned.engine.person import NameRuns
from xned.engine.pipeline import Outcomes, SpanVectors, per_document
from xned.engine.tagger import Tagger
from xned.types import Document, Mention

Spans = SpanVectors
_CJK = re.compile(f"[{CJK_CLASS}]")
MIN_REPEAT_CHARS = 2  # a repeated surface shorter than this is not propagated
#: a rule-based match the trained detector rejects is kept when its alias key's link
#: probability (how often the string is a link where it occurs) is at least this
KEEP_LINK_PROB = 0.5
#: a capitalized word cut into this many tokenizer pieces is rare: a name word (``person``)
RARE_PIECES = 3
RARE_MEMO = 100_000  # words whose rarity is remembered (the memo is cleared when full)


class MentionFinder:
    """The rule-based detectors of a KB (per language) and, where the bundle has one, the
    trained detector with the encoder it reads."""

    def __init__(
        self,
        kb: KB,
        tagger: Tagger | None = None,
        encoder: Encoder | None = None,
        taught: Callable[[], marisa_trie.Trie | None] | None = None,
    ):
        self.kb = kb
        self.tagger = tagger
        self.encoder = encoder
        self.taught = taught or (lambda: None)  # () -> the analyst's taught-key trie (or None)
        self._detectors: dict[str | None, Detector] = {}
        self._taught: marisa_trie.Trie | None = None  # the taught-key trie the detectors were built with
        self._rare_words: dict[str, bool] = {}

    def rules_for(self, lang: str | None) -> Detector:
        """The alias-table detector of ``lang``, with the analyst's taught keys (a string
        taught as an entity is always a mention)."""
        taught = self.taught()
        if taught is not self._taught:  # the corrections changed: detectors see the new keys
            self._detectors.clear()
            self._taught = taught
        if lang not in self._detectors:
            keys, folds = self.kb.detection_tries(lang)
            self._detectors[lang] = Detector(
                [*keys, taught] if taught is not None else keys,
                lambda k: 1.0 if taught is not None and k in taught else self.kb.link_probability(lang, k),
                fold_tries=folds,
                endings=suffixes(lang),
                names=NameRuns(lang, rare=self.rare),
            )
        return self._detectors[lang]

    def rare(self, word: str) -> bool:
        """A word the encoder's tokenizer cuts into three or more pieces (its vocabulary
        holds the frequent words of 100 languages whole); False without an encoder.
        Memoized: a text repeats its names, and tokenizing one word costs ~0.5 ms."""
        if self.encoder is None:
            return False
        known = self._rare_words.get(word)
        if known is not None:
            return known
        if len(self._rare_words) >= RARE_MEMO:
            self._rare_words.clear()
        self._rare_words[word] = found = self._count_rare(word)
        return found

    def _count_rare(self, word: str) -> bool:
        assert self.encoder is not None
        try:
            tok = self.encoder.tokenizer
            # as written and in lower case: a common word capitalized is cut more ("Yesterday")
            return all(len(tok.encode(w, add_special_tokens=False).ids) >= RARE_PIECES for w in (word, word.lower()))
        except Exception:  # a tokenizer that cannot load: the lexicon alone decides
            return False

    def rules(self, doc: Document) -> list[Mention]:
        spans = self.rules_for(doc.lang).detect(doc.text)
        return [Mention(sp.start, sp.end, doc.text[sp.start : sp.end]) for sp in spans]

    def rule_spans(self, doc: Document) -> list[tuple[Span, bool]]:
        """The rule-based matches of a document, each with whether it stands on its own
        (kept even where the trained detector disagrees: an alias that is usually a link, or
        a string an analyst taught)."""
        det = self.rules_for(doc.lang)
        out = []
        for sp in det.detect(doc.text):
            lp = det.link_prob(sp.key)
            out.append((sp, lp == lp and lp >= KEEP_LINK_PROB))
        return out

    def tag(self, todo: dict[int, Document]) -> Outcomes[Spans]:
        """The trained detector over the documents ``todo`` (index -> document): per
        document its mention vectors by span (the spans are its mentions), or the exception
        that stopped it (the failure stays with the document that caused it)."""
        if not todo:
            return Outcomes()
        tagger, encoder = self.tagger, self.encoder
        if tagger is None or encoder is None:
            raise RuntimeError("no trained detector loaded")

        def run(idx: list[int]) -> dict[int, Spans]:
            docs = [todo[i] for i in idx]
            spans = [self.rule_spans(d) for d in docs]
            found = tag_documents(encoder, tagger, [d.text for d in docs], spans)
            return dict(zip(idx, found, strict=True))

        return per_document(sorted(todo), run)


def tag_documents(
    encoder: Encoder,
    tagger: Tagger,
    texts: Sequence[str],
    rule_spans: Sequence[Sequence[tuple[Span, bool]]],
) -> list[Spans]:
    """Per text, its mentions (character spans, sorted) with their vectors."""
    starts = [[sp.start for sp, _ in rules] for rules in rule_spans]

    words: dict[int, list[tuple[int, int]]] = {}

    def words_of(d: int) -> list[tuple[int, int]]:
        if d not in words:
            words[d] = tokenize(texts[d])
        return words[d]

    def visit(d: int, offsets: np.ndarray, h: np.ndarray, lead: int) -> list[tuple[int, int, np.ndarray]]:
        text = texts[d]
        body = h[lead : lead + len(offsets)]
        probs = tagger.probs(body)
        tagged = [(t.start, t.end) for t in tagger.decode(text, offsets, probs, lambda: words_of(d))]
        lo, hi = int(offsets[0][0]), int(offsets[-1][1])
        rules = rule_spans[d][bisect.bisect_left(starts[d], lo) : bisect.bisect_left(starts[d], hi)]
        inside = 1.0 - probs[:, 0]
        pieces = token_spans(offsets, [(sp.start, sp.end) for sp, _ in rules])
        found = fuse(
            tagged,
            [
                ((sp.start, sp.end), keep or float(inside[a:b].mean()) >= tagger.rule_min_score)
                for (sp, keep), (a, b) in zip(rules, pieces, strict=True)
            ],
        )
        if not found:
            return []
        toks = token_spans(offsets, found)
        vecs = np.stack([encoder.pool(h, lead, a, b) for a, b in toks]).astype(np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return [(s, e, v) for (s, e), v in zip(found, vecs, strict=True)]

    chunks = encoder.encode_documents(texts, [[(sp.start, sp.end) for sp, _ in r] for r in rule_spans], visit)
    return [
        _repeat(text, {(s, e): v for part in parts for s, e, v in part})
        for text, parts in zip(texts, chunks, strict=True)
    ]


def fuse(tagged: Sequence[tuple[int, int]], rules: Sequence[tuple[tuple[int, int], bool]]) -> list[tuple[int, int]]:
    """The mentions of one chunk from the detector's spans and the rule-based matches
    (``(span, keep)``), sorted and disjoint:

    - a detected span that holds every match it overlaps stays as it is;
    - otherwise the matches it overlaps replace it: the alias tables know where the name
      ends ("Barack" + "Obama" tagged apart, "ヨタ自動車" cut in a word, are the matches
      "Barack Obama" and "トヨタ自動車");
    - a match no detected span overlaps is kept only if it stands on its own (``keep``).
    """
    out: list[tuple[int, int]] = []
    used: set[tuple[int, int]] = set()
    for t0, t1 in tagged:
        over = [r for r, _ in rules if r[0] < t1 and t0 < r[1]]
        if all(t0 <= r0 and r1 <= t1 for r0, r1 in over):
            out.append((t0, t1))
        else:
            out.extend(over)
        used.update(over)
    out.extend(r for r, keep in rules if keep and r not in used)
    result: list[tuple[int, int]] = []
    for sp in sorted(set(out), key=lambda x: (x[0], -x[1])):
        if not result or sp[0] >= result[-1][1]:
            result.append(sp)
    return result


def _repeat(text: str, found: Spans) -> Spans:
    """``found`` (disjoint spans) plus every other whole-word occurrence of its surfaces that
    overlaps no mention (see the module doc); longer surfaces first."""
    if not found:
        return found
    taken = sorted(found)  # disjoint, sorted: a new span can only overlap the last one starting before its end
    out = dict(found)
    first: dict[str, np.ndarray] = {}
    for s, e in taken:
        first.setdefault(text[s:e], found[(s, e)])
    for surface, vec in sorted(first.items(), key=lambda kv: -len(kv[0])):
        if len(surface) < MIN_REPEAT_CHARS:
            continue
        cjk = bool(_CJK.search(surface))
        pos = text.find(surface)
        while pos >= 0:
            end = pos + len(surface)
            if cjk:  # any position, but not inside a katakana word
                whole = not inside_katakana_word(text, pos) and not inside_katakana_word(text, end)
            else:
                whole = (pos == 0 or not text[pos - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
            k = bisect.bisect_left(taken, (end, -1)) - 1
            if whole and (k < 0 or taken[k][1] <= pos):
                out[(pos, end)] = vec
                taken.insert(k + 1, (pos, end))
            pos = text.find(surface, pos + 1)
    return dict(sorted(out.items()))
