"""Context chunks: each token is encoded at most once, every mention sits in one chunk."""

from hypothesis import given, settings
from hypothesis import strategies as st

from xned.engine.chunks import chunk_bounds, context_chunks


@st.composite
def doc_and_spans(draw):
    n = draw(st.integers(1, 2000))
    spans = []
    for _ in range(draw(st.integers(0, 40))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, min(n, a + 12)))
        spans.append((a, b))
    return n, spans


@settings(max_examples=300, deadline=None)
@given(doc_and_spans(), st.integers(8, 256), st.integers(0, 64))
def test_context_chunks_are_disjoint_bounded_and_hold_every_mention(case, size, context):
    n, spans = case
    chunks = context_chunks(n, spans, size, context)
    assert bool(chunks) == bool(spans)
    for (_, a1), (b0, _) in zip(chunks, chunks[1:], strict=False):
        assert a1 <= b0, "chunks overlap: a token would be encoded twice"
    for c0, c1 in chunks:
        assert 0 <= c0 < c1 <= n and c1 - c0 <= size
    for a, b in spans:
        holder = [c for c in chunks if c[0] <= a < c[1]]
        assert len(holder) == 1
        alone = all(d <= a or c >= b or (c, d) == (a, b) for c, d in spans)  # overlaps no other mention
        if b - a <= size // 2 and context == 0 and alone:
            assert b <= holder[0][1], "a short mention must not be cut"


@settings(max_examples=200, deadline=None)
@given(doc_and_spans(), st.integers(8, 256))
def test_chunk_bounds_cover_the_document_once(case, size):
    n, spans = case
    bounds = chunk_bounds(n, spans, size).tolist()
    assert bounds[0] == 0 and bounds[-1] == n
    steps = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    assert all(0 < s <= size for s in steps)


def test_isolated_mentions_get_their_own_context_only():
    chunks = context_chunks(10_000, [(100, 102), (5000, 5001)], 128, 32)
    assert chunks == [(68, 134), (4968, 5033)]


def test_nearby_mentions_share_one_chunk():
    chunks = context_chunks(10_000, [(100, 102), (120, 121)], 128, 32)
    assert chunks == [(68, 153)]
