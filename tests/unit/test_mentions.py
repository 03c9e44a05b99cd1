import marisa_trie

from xned.engine.mentions import Detector, tokenize


def detector(keys, link_prob=None):
    trie = marisa_trie.Trie(keys)
    lp = link_prob or {}
    return Detector([trie], lambda k: lp.get(k, float("nan")))


def spans(det, text):
    return [(text[s.start : s.end], s.key) for s in det.detect(text)]


def test_tokenize_cjk_per_character_latin_per_word():
    text = "EUの失業率 New York"
    toks = [text[s:e] for s, e in tokenize(text)]
    assert toks == ["EU", "の", "失", "業", "率", "New", "York"]


def test_a_katakana_run_is_one_word():
    text = "ボーイングとﾄﾖﾀ自動車・ジョージ"
    toks = [text[s:e] for s, e in tokenize(text)]
    assert toks == ["ボーイング", "と", "ﾄﾖﾀ", "自", "動", "車", "・", "ジョージ"]


def test_a_word_broken_by_ocr_hyphenation_is_one_word():
    text = "Frank¬\nreich und Ver¬ handlung; Ver\u00adtrag"
    assert [text[s:e] for s, e in tokenize(text)] == ["Frank¬\nreich", "und", "Ver¬ handlung", ";", "Ver\u00adtrag"]
    det = detector(["frankreich", "frank", "ver"])
    # the whole word matches as normalize joins it; no fragment ("Frank", "Ver") does
    assert spans(det, text) == [("Frank¬\nreich", "frankreich")]


def test_no_match_inside_a_katakana_word():
    det = detector(["イン", "エア", "バス", "ボーイング", "トヨタ", "ジョージ"])
    # "Boeing" holds "in", "Airbus" holds "air" and "bus": none of them is a mention
    assert spans(det, "エアバスとボーイングイン") == []
    assert spans(det, "ボーイングとトヨタ自動車、ジョージ・ブッシュ") == [
        ("ボーイング", "ボーイング"),
        ("トヨタ", "トヨタ"),
        ("ジョージ", "ジョージ"),
    ]


def test_longest_match_over_token_boundaries():
    det = detector(["new york", "new york city", "york"])
    assert spans(det, "I love New York City.") == [("New York City", "new york city")]
    # A key must end on a token boundary: "york" does not match inside "Yorkshire".
    assert spans(det, "Yorkshire pudding") == []


def test_cjk_matches_at_character_boundaries():
    det = detector(["東京", "東京都", "日本"])
    assert spans(det, "東京都と日本の首都") == [("東京都", "東京都"), ("日本", "日本")]


def test_lowercase_common_words_are_not_linked_without_link_prob():
    det = detector(["apple", "paris"])
    assert spans(det, "an apple in Paris") == [("Paris", "paris")]


def test_a_capitalized_word_the_text_also_writes_in_lower_case_is_not_a_name():
    det = detector(["the", "store", "apple", "us", "new york"])
    text = "The store opened. Apple said the Store in New York would help us and the US."
    assert spans(det, text) == [("Apple", "apple"), ("New York", "new york"), ("US", "us")]
    # without the lower-case use, a capitalized word still counts (link probability unknown)
    assert spans(det, "The Store opened.") == [("The", "the"), ("Store", "store")]


def test_known_link_probability_overrides_capitalization():
    det = detector(["apple", "the"], {"apple": 0.5, "the": 0.001})
    assert spans(det, "The apple") == [("apple", "apple")]


def test_punctuation_and_spacing_join_like_keys():
    det = detector(["u.s.", "washington, d.c."])
    assert spans(det, "The U.S. capital is Washington, D.C. today") == [
        ("U.S.", "u.s."),
        ("Washington, D.C.", "washington, d.c."),
    ]


def test_single_character_keys_are_ignored():
    det = detector(["a", "日"])
    assert spans(det, "A 日") == []


def test_a_legal_form_or_a_number_alone_is_no_mention():
    # "Inc" is an alias (INC, a party) and "11" one of some entity; alone in running text the
    # first ends a company name the KB lacks, the second is a number: neither names anything
    det = detector(["inc", "inc.", "11", "acme inc", "7-eleven"], {"inc": 0.5, "11": 0.5})
    text = "Zyx Inc. and Acme Inc said 11 stores of 7-Eleven"
    assert spans(det, text) == [("Acme Inc", "acme inc"), ("7-Eleven", "7-eleven")]
