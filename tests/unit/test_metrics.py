"""The score's promise, measured: AUROC and accuracy at a coverage, against brute force."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xned.evaluate import accuracy_at_coverage, auroc

scored = st.lists(st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]) | st.floats(0, 1), st.booleans()), max_size=40)


@given(scored)
def test_auroc_is_the_share_of_right_wrong_pairs_ordered_right(items):
    right = [s for s, ok in items if ok]
    wrong = [s for s, ok in items if not ok]
    got = auroc(items)
    if not right or not wrong:
        assert got is None
        return
    pairs = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong)
    assert abs(got - pairs / (len(right) * len(wrong))) < 1e-4


def test_accuracy_at_coverage_reads_the_best_scored_links():
    items = [(0.95, False), (0.9, True), (0.8, True), (0.7, False), (0.2, False)]
    assert accuracy_at_coverage(items, 0.8) == 0.5  # the best 4: one wrong, two right, one wrong
    assert accuracy_at_coverage(items, 0.4) == 0.5
    assert accuracy_at_coverage([], 0.8) is None
