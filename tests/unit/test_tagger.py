"""The trained detector's decoding, its fusion with the alias tables, document-level
consistency and the training labels (no encoder needed)."""

from __future__ import annotations

import numpy as np

from xned.engine.detection import _repeat, fuse
from xned.engine.tagger import decode
from xned.export.detector.train import IGNORE, TAG_B, TAG_I, TAG_O, bio_labels


def _probs(labels: list[int], sure: float = 0.9) -> np.ndarray:
    p = np.full((len(labels), 3), (1 - sure) / 2, np.float32)
    p[np.arange(len(labels)), labels] = sure
    return p


def test_decode_runs_widened_to_words_and_scored():
    text = "Ms Angela Merkelova spoke."
    # pieces: "Ms" " Angela" " Merkel" "ova" " spoke" "."
    offsets = np.array([[0, 2], [2, 9], [9, 16], [16, 19], [19, 25], [25, 26]])
    spans = decode(text, offsets, _probs([0, 1, 2, 0, 0, 0]), 0.5)
    # the run "Angela Merkel" is widened to the whole word "Merkelova" (a case ending stays)
    assert [(text[t.start : t.end], round(t.score, 2)) for t in spans] == [("Angela Merkelova", 0.95)]
    # a span whose pieces are unsure is dropped by min_score
    unsure = _probs([0, 1, 2, 0, 0, 0], sure=0.4)
    assert decode(text, offsets, unsure, 0.7) == []


def test_decode_i_after_o_starts_a_span_and_empty_pieces_are_skipped():
    text = "in Paris now"
    offsets = np.array([[0, 2], [2, 2], [2, 8], [8, 12]])  # an empty marker piece before "Paris"
    spans = decode(text, offsets, _probs([0, 1, 2, 0]), 0.5)
    assert [(t.start, t.end) for t in spans] == [(3, 8)]


def test_fuse_prefers_alias_boundaries_and_keeps_standalone_matches():
    # "Barack" and "Obama" tagged apart inside the match "Barack Obama": the match wins
    assert fuse([(0, 6), (7, 12)], [((0, 12), False)]) == [(0, 12)]
    # a tagged span holding the match stays (the detector saw a longer name)
    assert fuse([(0, 20)], [((7, 12), False)]) == [(0, 20)]
    # a match the detector rejected: kept only if it stands on its own
    assert fuse([], [((0, 4), False), ((10, 14), True)]) == [(10, 14)]
    # a tagged span with no match (a name the KB may not know) stays: it becomes NIL if no candidate
    assert fuse([(30, 35)], [((0, 4), False)]) == [(30, 35)]


def test_repeat_links_every_whole_word_occurrence_once():
    text = "Merkel met Obama. Later Merkel spoke; Merkelism is not a name. Merkel."
    v = np.ones(2, np.float32)
    out = _repeat(text, {(0, 6): v})
    assert [text[s:e] for s, e in out] == ["Merkel", "Merkel", "Merkel"]
    assert all(out[k] is v for k in out)
    # CJK: no word boundaries, and an occurrence inside a longer mention is not added
    ja = "トヨタ自動車の社長。トヨタは大きい。"
    got = _repeat(ja, {(0, 6): v, (10, 13): v})
    assert sorted(got) == [(0, 6), (10, 13)]


def test_bio_labels_outermost_nested_and_whitespace_pieces():
    text = "New York City is big"
    offsets = np.array([[0, 3], [3, 8], [8, 13], [13, 13], [13, 16], [16, 20]])
    y = bio_labels(text, offsets, [(0, 13), (4, 8)])  # "York" nested in "New York City"
    assert y.tolist() == [TAG_B, TAG_I, TAG_I, IGNORE, TAG_O, TAG_O]
    # two adjacent mentions: each starts with B
    y2 = bio_labels("Paris London", np.array([[0, 5], [5, 12]]), [(0, 5), (6, 12)])
    assert y2.tolist() == [TAG_B, TAG_B]


def test_bio_labels_of_partly_marked_text():
    # Wikipedia links "London" and the concept "physics"; "Bank of England" is a name nobody linked
    text = "The Bank of England met in London with physics experts"
    words = text.split(" ")
    starts = [text.index(w) for w in words]
    offsets = np.array([[s, s + len(w)] for s, w in zip(starts, words, strict=True)])
    spans = [(text.index("London"), text.index("London") + 6), (text.index("physics"), text.index("physics") + 7)]
    got = dict(zip(words, bio_labels(text, offsets, spans, partial=True).tolist(), strict=True))
    assert got["London"] == TAG_B
    # capitalized unlinked words and lower-case links are neither taught as names nor as O
    assert got["The"] == got["Bank"] == got["England"] == got["physics"] == IGNORE
    assert got["of"] == got["met"] == got["with"] == got["experts"] == TAG_O
    # fully annotated text: every link is a mention, everything else O
    full = dict(zip(words, bio_labels(text, offsets, spans).tolist(), strict=True))
    assert full["physics"] == TAG_B and full["Bank"] == TAG_O
