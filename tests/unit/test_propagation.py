import numpy as np

from xned.engine.propagation import propagate


def _c(*ents):
    return np.array(ents, np.int32), np.array([1.0 / len(ents)] * len(ents) if ents else [], np.float32)


def test_part_and_acronym_inherit_from_the_longest_earliest_mention():
    keys = ["barack obama", "obama", "united nations", "un", "michelle obama", "obama", "nobody"]
    per = [_c(1), _c(2, 3), _c(7), _c(), _c(9), _c(2, 3), _c()]
    out = propagate(keys, per, 30)
    # "obama": both two-word mentions contain it; the first one in the document wins
    assert out[1][0].tolist() == [1, 2, 3] and out[1][1][0] == 0.5
    assert out[5][0].tolist() == out[1][0].tolist()
    # "un" has no candidates of its own: all of "united nations"
    assert out[3][0].tolist() == [7] and out[3][1][0] == 1.0
    assert out[0] is per[0] and out[6] is per[6]


def test_a_long_document_propagates_per_distinct_name():
    names = [f"person{i} family{i}" for i in range(3000)]
    keys = names + [f"family{i}" for i in range(3000)]
    per = [_c(i + 1) for i in range(3000)] + [_c() for _ in range(3000)]
    out = propagate(keys, per, 30)
    assert [int(out[3000 + i][0][0]) for i in range(3000)] == [i + 1 for i in range(3000)]


def test_a_mention_found_by_a_name_inside_it_gives_no_candidates():
    # "cms enhancements inc" has the candidates of a name inside it (a piece): "cms" after it
    # inherits nothing from it, while "acme" still inherits from the whole alias "acme corp"
    keys = ["cms enhancements inc", "cms", "acme corp", "acme"]
    per = [_c(5), _c(), _c(8), _c()]
    pieces = {"cms enhancements inc"}
    out = propagate(keys, per, 30, piece=lambda k: k in pieces)
    assert out[1][0].tolist() == [] and out[3][0].tolist() == [8]
    assert propagate(keys, per, 30)[1][0].tolist() == [5]  # without the check it did
