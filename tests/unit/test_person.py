"""Whole names: an alias match inside a longer name is widened to the whole name."""

from __future__ import annotations

import pytest

from xned.engine.mentions import tokenize
from xned.engine.person import NameRuns, PersonNames, person_names


class Lexicon(PersonNames):
    def __init__(self, given=(), family=()):
        self._g, self._f = set(given), set(family)

    def is_given(self, word):
        return word.lower() in self._g

    def is_family(self, word):
        return word.lower() in self._f


NAMES = Lexicon(
    given={"henry", "jack", "giorgia", "ludwig", "paris", "virginia", "georgia", "chanel"},
    family={"woolf", "ferrari", "lincoln"},
)


def widen(text, matches, lang="en", names=NAMES, rare=None):
    spans = []
    for m in matches:
        s = text.index(m)
        spans.append((s, s + len(m)))
    out = NameRuns(lang, names, rare).extend(text, tokenize(text), spans)
    return [text[s:e] for s, e in out]


@pytest.mark.parametrize(
    ("text", "matches", "lang", "want"),
    [
        ("Henry Ford was born on a farm.", ["Ford"], "en", ["Henry Ford"]),
        ("Ford recalled forty thousand trucks.", ["Ford"], "en", ["Ford"]),  # the control
        ("The Ford plant closed.", ["Ford"], "en", ["Ford"]),  # a common word is no name
        ("In January Ford said so.", ["Ford"], "en", ["Ford"]),
        ("La presidente Giorgia Meloni ha parlato.", ["Giorgia"], "it", ["Giorgia Meloni"]),
        ("President Jack London spoke.", ["London"], "en", ["Jack London"]),  # the title stays out
        ("Dr. Smith Hilton spoke.", ["Hilton"], "en", ["Hilton"]),  # a title alone widens nothing leftwards
        ("Virginia passed a law.", ["Virginia"], "en", ["Virginia"]),
        ("Virginia Woolf kept a diary.", ["Virginia"], "en", ["Virginia Woolf"]),
        ("Georgia O'Keeffe painted flowers.", ["Georgia"], "en", ["Georgia O'Keeffe"]),
        ("He met Ludwig van Beethoven there.", ["Beethoven"], "en", ["Ludwig van Beethoven"]),
        ("They saw J. Henry Ford there.", ["Ford"], "en", ["J. Henry Ford"]),
        ("Paris Hilton arrived.", ["Paris", "Hilton"], "en", ["Paris Hilton"]),  # one name, not two
        (
            "Euskara Frantzia eta Alemania artean.",
            ["Euskara", "Frantzia", "Alemania"],
            "eu",
            ["Euskara", "Frantzia", "Alemania"],
        ),  # two names side by side stay two
        ("Coco Chanel opened a shop.", ["Coco", "Chanel"], "en", ["Coco Chanel"]),  # unless the second is a name
        (
            "Trains ran Zurich Paris Lyon daily.",
            ["Zurich", "Paris", "Lyon"],
            "en",
            ["Zurich", "Paris", "Lyon"],
        ),  # a list
        ("Coco Chanel eröffnete.", ["Coco", "Chanel"], "de", ["Coco", "Chanel"]),  # German: every noun capitalized
        ("Secretary Gates said so.", ["Secretary", "Gates"], "en", ["Gates"]),  # a title is no mention
        ("Sen. McCain and Queen Elizabeth met.", ["Sen", "McCain", "Queen"], "en", ["McCain"]),
        ("Queen played Wembley.", ["Queen"], "en", ["Queen"]),  # the band, alone
        ("President Lincoln spoke.", ["President", "Lincoln"], "en", ["Lincoln"]),
        ("La Ferrari ha presentato una coupé.", ["La", "Ferrari"], "it", ["La", "Ferrari"]),  # an article
        ("Toyota Corolla sales rose.", ["Toyota"], "en", ["Toyota Corolla"]),
        ("Ford CEO Jim Farley spoke.", ["Ford"], "en", ["Ford"]),  # an acronym stops it
        ("Toyota Recalls Cars In Japan Today", ["Toyota", "Japan"], "en", ["Toyota", "Japan"]),  # headline
        ("TOYOTA RECALLS CARS", ["TOYOTA"], "en", ["TOYOTA"]),
        ("In Japan Autos verkaufen ist schwer.", ["Japan"], "de", ["Japan"]),  # German nouns
        ("Henry Ford wurde auf einer Farm geboren.", ["Ford"], "de", ["Henry Ford"]),
        ("Frau Paris Hilton eröffnete die Ausstellung.", ["Paris", "Hilton"], "de", ["Paris Hilton"]),
        ("ジャック・ロンドンは物語を書いた。", ["ロンドン"], "ja", ["ジャック・ロンドン"]),
        ("ロンドンの市長が話した。", ["ロンドン"], "ja", ["ロンドン"]),
        ("杰克·伦敦写过许多故事。", ["伦敦"], "zh", ["杰克·伦敦"]),
        ("كتب جاك لندن قصصا.", ["لندن"], "ar", ["لندن"]),  # no case: no capital marks a name
    ],
)
def test_matches_are_widened_to_whole_names(text, matches, lang, want):
    assert widen(text, matches, lang) == want


def test_a_rare_capitalized_word_is_a_name_word_except_in_german():
    rare = {"Soichiro", "Autohersteller"}.__contains__
    assert widen("Soichiro Honda repaired bicycles.", ["Honda"], rare=rare) == ["Soichiro Honda"]
    assert widen("Der Autohersteller Honda baut.", ["Honda"], "de", rare=rare) == ["Honda"]


def test_the_shipped_lexicon_knows_given_names_of_many_scripts():
    names = person_names()
    for word in ("Henry", "Giorgia", "Enzo", "Михаил", "محمد", "Ferdinand"):
        assert names.is_given(word), word
    for word in ("The", "January", "president"):
        assert not names.is_given(word), word
    assert names.is_family("Smith") and not names.is_family("van")


def test_a_mention_reads_as_a_persons_name():
    from xned.engine.person import is_person_type, reads_as_person

    assert reads_as_person("Henry Ford") and reads_as_person("Giorgia Meloni")
    assert not reads_as_person("ニューヨーク・タイムズ")  # Japanese dots join organizations' names too
    assert not reads_as_person("Ford") and not reads_as_person("New York") and not reads_as_person("Toyota Corolla")
    assert is_person_type("person") and is_person_type("Q5") and not is_person_type("city/town")
    # a rare first word is a name word the lexicon lacks, where the KB knows the second word
    # and not the first, the name is no company's, and not in German (nouns are capitalized)
    rare = {"Soichiro", "Synergen", "Asarco", "Kirchgemeinde"}.__contains__
    known = {"Honda", "Inc", "Asarco", "Enge"}.__contains__
    assert reads_as_person("Soichiro Honda", rare, known=known) and not reads_as_person("Soichiro Honda")
    assert not reads_as_person("Soichiro Honda", rare, known=known, lang="de")
    assert not reads_as_person("Asarco Inc", rare, known=known) and not reads_as_person("Synergen Inc", rare)
    assert not reads_as_person("Toyota Corolla", rare) and not reads_as_person("soichiro honda", rare)


def test_the_name_inside_a_persons_name_keeps_only_people(linker):
    """ "Jack Paris" has no alias of its own; through "Paris" come the city, the town in Texas and
    Paris Hilton. Read as a person's name, only the person stays a candidate."""
    text = "Jack Paris arrived."
    (link,) = linker.link(text, lang="en", mentions=[(0, 10)], candidates=True)
    from xned.engine.person import is_person_type

    kinds = {c.qid: linker.kb.type_name(linker.kb.index(c.qid)) for c in link.candidates}
    assert "Q47899" in kinds and all(is_person_type(k) for k in kinds.values()), kinds
    (city,) = linker.link("Paris arrived.", lang="en", mentions=[(0, 5)], candidates=True)
    assert any(c.qid == "Q90" for c in city.candidates)  # the name alone keeps every candidate


def test_teaching_a_persons_name_uses_the_candidates_it_keeps(bundle_copy, tmp_path):
    """The analyst's correction of such a name is fit on the candidates its features keep
    (it crashed when the class list still held the filtered ones)."""
    from xned import Linker

    lk = Linker.load(bundle_copy, state=tmp_path / "state")
    text = "Jack Paris arrived late."
    lk.teach(text, 0, 10, "Q47899", lang="en")
    lk.teach("Later Jack Paris sang.", 6, 16, None, lang="en")
    (link,) = lk.link("Then Jack Paris left.", lang="en", mentions=[(5, 15)])
    assert link.corrected
