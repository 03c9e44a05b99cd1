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


def test_scripts_without_spaces_inherit_by_prefix_only_without_own_candidates():
    keys = ["麻生太郎", "麻生", "トヨタ自動車", "トヨタ", "日本銀行", "日本", "の", "太郎"]
    per = [_c(1), _c(), _c(5), _c(), _c(8), _c(9), _c(), _c()]
    out = propagate(keys, per, 30)
    assert out[1][0].tolist() == [1]  # the family name after the full name
    assert out[3][0].tolist() == [5]  # a short form after the company's full name
    assert out[5] is per[5]  # "日本" has candidates of its own: kept, not mixed with the bank
    assert out[6] is per[6]  # a single character never inherits
    assert out[7] is per[7]  # a suffix is not a prefix ("太郎" is a given name, not the person)


def test_katakana_name_parts_split_at_the_middle_dot():
    keys = ["ジョン・スミス", "スミス"]
    out = propagate(keys, [_c(3), _c(4)], 30)
    assert out[1][0].tolist() == [3, 4] and out[1][1][0] == 0.5  # half the full name's, half its own
