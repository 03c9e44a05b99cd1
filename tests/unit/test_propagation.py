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


def test_a_mention_found_by_a_name_inside_it_gives_only_to_a_part_of_that_name():
    # "cms enhancements inc" has the candidates of "inc" (a name inside it): "cms" inherits
    # nothing; "rolls" after "rolls-royce plc" (found through "rolls-royce") inherits them;
    # "acme" still inherits from the whole alias "acme corp"
    keys = ["cms enhancements inc", "cms", "rolls-royce plc", "rolls", "acme corp", "acme", "rrp"]
    per = [_c(5), _c(), _c(6), _c(), _c(8), _c(), _c()]
    inner = {"cms enhancements inc": ("inc",), "rolls-royce plc": ("rolls-royce",)}
    out = propagate(keys, per, 30, inner=lambda k: inner.get(k, ()))
    assert out[1][0].tolist() == [] and out[3][0].tolist() == [6] and out[5][0].tolist() == [8]
    assert out[6][0].tolist() == []  # no acronym of a name found by a piece
    plain = propagate(keys, per, 30)  # without the names inside, both would have inherited
    assert plain[1][0].tolist() == [5] and plain[6][0].tolist() == [6]
