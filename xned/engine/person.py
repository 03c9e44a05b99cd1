"""Whole names: a detected alias inside a longer name becomes the whole name.

"Henry Ford was born on a farm": the alias tables know "Ford" (the company), not "Henry
Ford", and a bundle holds a small part of Wikidata, so most people a text names are absent.
Linking the piece would be a wrong link that looks right. ``NameRuns.extend`` widens each
alias match to the name around it, so the mention is "Henry Ford"; lookup then finds its
candidates only through a name inside it, which the scorer's ``partial`` feature marks (see
``xned.engine.scoring``), and the mention is NIL unless its context supports a candidate.

A match is widened over neighbouring words joined by one space:

- to the left, over given names (the person-name lexicon, ``xned/assets/names``: Faker's
  given and family names of 80+ locales) and rare capitalized words (three or more pieces of
  the bundle's tokenizer: "Soichiro", not "The"), initials ("J."), and particles between name words
  ("Ludwig van Beethoven"); an honorific or title ("President", "Dr.", "Frau", "presidente")
  is kept out of the name but says the words after it are a person's name;
- to the right, over capitalized words (not acronyms, not a title), in German only over
  family names or after a given name (German capitalizes every noun), over another alias
  match only after a given name or title, or when that match is itself a given or family name
  ("Paris Hilton", "Coco Chanel"; but "Euskara Frantzia eta ..." are two names), and over
  particles followed by one;
- a name word and an apostrophe or hyphen joined to the next ("O'Keeffe", "al-Assad") are
  one word;
- in Japanese and Chinese, over the katakana or Han names joined to it by a middle dot
  ("ジャック・ロンドン", "杰克·伦敦").

A match that is a title or honorific before a capitalized word ("Secretary Gates", "Sen.
McCain", "Queen Elizabeth") is no mention of its own: the name after it is.

Nothing is widened in a line written in title case or capitals (a headline: most of its
words capitalized) or in scripts without case, where no capital marks a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import marisa_trie

from xned.engine.normalize import KATAKANA_CLASS, normalize


def _words(text: str) -> list[str]:
    return text.split()


NAMES_DIR = Path(__file__).resolve().parents[1] / "assets" / "names"

#: honorifics and titles: kept out of a name, and a sign that a name follows
TITLES = frozenset(
    _words(
        """
        mr mrs ms miss mx dr doctor prof professor sir dame lord lady president presidente presidenta
        président présidente präsident präsidentin premier minister ministre ministro ministra
        chancellor kanzler kanzlerin senator senador senadora sénateur senatore governor gobernador
        governatore king queen prince princess pope papa general gen col capt captain judge justice herr
        frau fräulein señor señora sr sra srta don doña dona monsieur madame mademoiselle mme mlle
        signor signora sig dott dottor dottoressa avv ing mister reverend rev father sister brother
        rabbi imam sheikh emir sultan shah tsar czar mayor alcalde bürgermeister maire sindaco prefeito
        ceo chairman chairwoman coach trainer actor actress singer rapper secretary director spokesman
        spokeswoman sen gov rep gen col lt sgt capt cmdr adm maj supt insp господин госпожа президент
        премьер министр король королева мистер миссис доктор профессор генерал сенатор канцлер мэр
        певица певец актёр актриса الرئيس السيد السيدة الدكتور الملك الملكة الأمير الشيخ المغنية المغني
        """
    )
)
#: lower-case words inside names: "Ludwig van Beethoven", "Leonardo da Vinci", "bin Salman"
PARTICLES = frozenset(
    _words(
        """
        de da do dos das di del della dello der den van von zu la le du des ter ten bin ibn ben bint al
        el af av
        """
    )
)
#: capitalized words that are no names: months, days (English capitalizes both)
NOT_NAMES = frozenset(
    _words(
        """
        january february march april may june july august september october november december monday
        tuesday wednesday thursday friday saturday sunday the a an in on at of and or
        """
    )
)
#: legal forms of companies: a name that ends in one is no person's ("Synergen Inc")
LEGAL_FORMS = frozenset(
    _words("inc ltd corp co llc plc sa spa ag gmbh nv bv ab oy asa kk sas srl lp llp pty bhd sarl kg ohg")
)


def is_legal_form(key: str) -> bool:
    """Whether a normalized word is a company's legal form alone ("inc", "inc.", "ag")."""
    return key.rstrip(".") in LEGAL_FORMS


#: languages that capitalize every noun: words right of a match need name evidence
NOUNS_CAPITALIZED = frozenset({"de", "lb"})
MIDDLE_DOTS = "・·‧･"
_SENTENCE_END = set('.!?。！？\n"“”«»:;')
_KATAKANA = re.compile(f"[{KATAKANA_CLASS}]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MAX_HAN_NAME = 4  # Han characters taken on the far side of a middle dot
#: a line of at least 4 words this share of which are capitalized is a headline (German
#: prose, every noun capitalized, stays under it)
HEADLINE_SHARE = 0.8


class PersonNames:
    """The given- and family-name tries (memory-mapped; empty where the files are absent)."""

    def __init__(self, root: Path = NAMES_DIR):

        self.given = marisa_trie.Trie()
        self.family = marisa_trie.Trie()
        for trie, name in ((self.given, "given.marisa"), (self.family, "family.marisa")):
            if (root / name).is_file():
                trie.mmap(str(root / name))

    def is_given(self, word: str) -> bool:
        key = normalize(word)
        return key not in NOT_NAMES and key in self.given

    def is_family(self, word: str) -> bool:
        key = normalize(word)
        return key not in NOT_NAMES and key not in PARTICLES and key in self.family

    def is_name(self, word: str) -> bool:
        """A given or a family name ("Chanel", "Hilton")."""
        return self.is_given(word) or self.is_family(word)


@cache
def person_names() -> PersonNames:
    return PersonNames()


def _capitalized(word: str) -> bool:
    return word[:1].isupper() and not (len(word) > 1 and word.isupper())


def _is_title(word: str) -> bool:
    return normalize(word).rstrip(".") in TITLES


def reads_as_person(
    text: str,
    rare: Callable[[str], bool] | None = None,
    names: PersonNames | None = None,
    known: Callable[[str], bool] | None = None,
    lang: str | None = None,
) -> bool:
    """A mention that reads as a person's name: two or more words, the first a given name
    ("Henry Ford", "Giorgia Meloni") or, in a name of two words, a rare capitalized word
    (``rare``: the tokenizer cuts it; "Soichiro Honda"), the evidence ``NameRuns`` widens a
    match on, where the KB (``known``: whether a word names something on its own) knows the
    second word and not the first: not "Asarco Inc", "Hambros Bank Ltd", nor a name that ends
    in a company's legal form ("Synergen Inc"). Not in German (``lang``), where a rare
    capitalized word is as often a noun: "Kirchgemeinde Enge", "Berichterstatter Jordan"
    (with it, German accuracy on HIPE-2020 dev fell 0.7 point).
    Not a last word that is a name: places end in them ("New York", "San Diego"). Katakana
    joined by a middle dot is not enough: Japanese writes organizations that way too
    ("ニューヨーク・タイムズ"); with it, Japanese accuracy on the protocol's --supplement all
    fell 47.5 -> 45.2."""
    words = text.split()
    if len(words) < 2:
        return False
    first = words[0].rstrip(".")
    if not (_capitalized(first) and first.isalpha()):
        return False
    if (names or person_names()).is_given(first):
        return True
    if rare is None or len(words) != 2 or (lang or "").split("-")[0].lower() in NOUNS_CAPITALIZED:
        return False
    if is_legal_form(normalize(words[1])) or not rare(first):
        return False
    return known is None or (known(words[1]) and not known(first))


#: KB type names of people: a TSV extract's ``person``, a Wikidata dump's P31 value ``Q5`` (human)
PERSON_TYPES = frozenset({"person", "human", "q5"})


def is_person_type(type_name: str) -> bool:
    t = type_name.lower()
    return t in PERSON_TYPES or t.startswith("person")


class NameRuns:
    """Widens alias matches of one language to whole names (see the module docstring)."""

    def __init__(self, lang: str | None, names: PersonNames | None = None, rare: Callable[[str], bool] | None = None):
        self.lang = (lang or "").split("-")[0].lower()
        self.names = names or person_names()
        #: whether a word is rare (the encoder's tokenizer cuts it into several pieces): a
        #: rare capitalized word beside a name is a name word the lexicon lacks ("Soichiro")
        self.rare = rare or (lambda _w: False)

    def extend(self, text: str, toks: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``spans`` (sorted, disjoint character spans of alias matches, each on token
        boundaries of ``toks``) widened to whole names; spans a widened one covers merge."""
        if not spans:
            return spans
        starts = {s: i for i, (s, _) in enumerate(toks)}
        ends = {e: i for i, (_, e) in enumerate(toks)}
        matched = {starts[s] for s, _ in spans if s in starts}  # first tokens of alias matches
        headline = self._headlines(text, toks)
        out: list[tuple[int, int]] = []
        for s, e in spans:
            i, j = starts.get(s), ends.get(e)
            if i is None or j is None:
                out.append((s, e))
                continue
            if headline[i]:  # a line in title case or capitals: every word looks like a name
                out.append((s, e))
                continue
            if i == j and self._title_before_name(text, toks, i):
                continue  # "Secretary Gates", "Queen Elizabeth": a title, not a mention of its own
            ns, ne = self._widen(text, toks, i, j, matched)
            while out and out[-1][1] > ns:  # swallowed by the widened name
                prev = out.pop()
                ns = min(ns, prev[0])
            out.append((ns, max(ne, e)))
        return out

    # -- one match ----------------------------------------------------------------------
    def _widen(self, text: str, toks: list[tuple[int, int]], i: int, j: int, matched: set[int]) -> tuple[int, int]:
        first = text[toks[i][0] : toks[i][1]]
        if _KATAKANA.fullmatch(first) or _HAN.match(first):
            return self._dotted(text, toks, i, j)
        if not any(ch.isalpha() and ch.lower() != ch.upper() for ch in first):
            return toks[i][0], toks[j][1]  # a script without case: no capital marks a name
        if first.isupper() and len(first) > 1:
            return toks[i][0], toks[j][1]
        word = lambda k: text[toks[k][0] : toks[k][1]]  # noqa: E731
        person = self.names.is_given(first)
        # left: given names, initials, particles between name words; a title stops it
        a = i
        while a > 0:
            k = a - 1
            if not self._spaced(text, toks, k, a):
                break
            w = word(k)
            if _is_title(w) or (w == "." and k > 0 and _is_title(word(k - 1))):
                person = True
                break
            if w == "." and k > 0 and len(word(k - 1)) == 1 and word(k - 1).isupper():  # an initial "J."
                a = k - 1
                continue
            if (
                _capitalized(w)
                and w.isalpha()
                and not _is_title(w)
                and (
                    self.names.is_given(w)
                    or (self.lang not in NOUNS_CAPITALIZED and self.rare(w))  # German: "Autohersteller Toyota"
                )
                and not (k - 1 in matched and self._in_run(text, toks, k - 1, k))  # "Zurich Paris Lyon"
            ):
                a, person = k, True
                continue
            if w.lower() in PARTICLES and k > 0 and self._spaced(text, toks, k - 1, k):
                left = word(k - 1)
                if _capitalized(left) and self.names.is_given(left):
                    a, person = k - 1, True
                    continue
            break
        # right: capitalized words (name evidence needed where every noun is capitalized)
        b = j
        while b + 1 < len(toks):
            k = b + 1
            if not self._spaced(text, toks, b, k):
                break
            w = word(k)
            unit_end = self._joined(text, toks, k)  # "O'Keeffe", "al-Assad"
            if w.lower() in PARTICLES and person and unit_end + 1 < len(toks):
                nxt = word(unit_end + 1)
                if self._spaced(text, toks, unit_end, unit_end + 1) and _capitalized(nxt) and nxt.isalpha():
                    b = self._joined(text, toks, unit_end + 1)
                    continue
                break
            if not (_capitalized(w) and w.isalpha()) or _is_title(w) or normalize(w) in NOT_NAMES:
                break
            if k in matched:
                # two names side by side are two ("Euskara Frantzia eta ...") unless a given name
                # or title came first, or the second is a person's name word ("Coco Chanel":
                # "Coco" is a brand too); never in a run of three capitalized words (a list or a
                # heading: "Zurich Paris Lyon"); by a name word alone not after an article or a
                # title ("La Ferrari", "President Lincoln") and not where every noun is
                # capitalized ("Frankreich Paris", "Namen Franz Joseph")
                if self._in_run(text, toks, unit_end + 1, unit_end) or self._in_run(text, toks, a - 1, a):
                    break
                if not person:
                    first_word = word(a)
                    if (
                        not self.names.is_name(w)
                        or normalize(first_word) in PARTICLES
                        or len(first_word) < 3
                        or _is_title(first_word)
                        or self.lang in NOUNS_CAPITALIZED
                    ):
                        break
                    person = True
            if self.lang in NOUNS_CAPITALIZED and not (person or self.names.is_family(w)):
                break
            b = unit_end
        if a == i and b == j and not person:
            return toks[i][0], toks[j][1]
        return toks[a][0], toks[b][1]

    def _title_before_name(self, text: str, toks: list[tuple[int, int]], i: int) -> bool:
        """Token ``i`` is a title or honorific followed by a capitalized word ("Secretary
        Gates", "Sen. McCain")."""
        if not _is_title(text[toks[i][0] : toks[i][1]]):
            return False
        k = i + 1
        if k < len(toks) and text[toks[k][0] : toks[k][1]] == "." and toks[k][0] == toks[i][1]:
            k += 1
        if k >= len(toks) or not self._spaced(text, toks, k - 1, k):
            return False
        nxt = text[toks[k][0] : toks[k][1]]
        return _capitalized(nxt) and nxt.isalpha()

    def _in_run(self, text: str, toks: list[tuple[int, int]], k: int, beside: int) -> bool:
        """Token ``k`` is a capitalized word one space from token ``beside`` (not a function
        word that starts a sentence, "The", "In", nor a title), so the two are in a run of
        capitalized words; never where every noun is capitalized (German runs are nouns and
        names: "Namen Franz Carl")."""
        if self.lang in NOUNS_CAPITALIZED or not 0 <= k < len(toks) or k == beside:
            return False
        lo, hi = min(k, beside), max(k, beside)
        w = text[toks[k][0] : toks[k][1]]
        if normalize(w) in NOT_NAMES or normalize(w) in PARTICLES or _is_title(w):
            return False
        return hi - lo == 1 and self._spaced(text, toks, lo, hi) and _capitalized(w) and w.isalpha()

    @staticmethod
    def _spaced(text: str, toks: list[tuple[int, int]], k: int, m: int) -> bool:
        """Tokens ``k`` and ``m`` (= k + 1) are separated by exactly one space."""
        return text[toks[k][1] : toks[m][0]] == " "

    @staticmethod
    def _joined(text: str, toks: list[tuple[int, int]], k: int) -> int:
        """The last token of the word starting at ``k`` with apostrophe or hyphen joins."""
        while k + 2 < len(toks):
            mark = text[toks[k + 1][0] : toks[k + 1][1]]
            if (
                mark in ("'", "’", "-")
                and toks[k][1] == toks[k + 1][0]
                and toks[k + 1][1] == toks[k + 2][0]
                and text[toks[k + 2][0]].isalpha()
            ):
                k += 2
                continue
            break
        return k

    @staticmethod
    def _headlines(text: str, toks: list[tuple[int, int]]) -> list[bool]:
        """Per token: whether its line is in title case or capitals (at least 4 words, most
        of them capitalized). One pass over the tokens."""
        line_of: list[int] = []
        words: list[int] = []
        capitals: list[int] = []
        line = 0
        pos = 0
        for s, e in toks:
            line += text.count("\n", pos, s)
            pos = s
            while len(words) <= line:
                words.append(0)
                capitals.append(0)
            line_of.append(line)
            w = text[s:e]
            if w.isalpha():
                words[line] += 1
                capitals[line] += w[0].isupper()
        head = [n >= 4 and c >= HEADLINE_SHARE * n for n, c in zip(words, capitals, strict=True)]
        return [head[k] for k in line_of]

    @staticmethod
    def _dotted(text: str, toks: list[tuple[int, int]], i: int, j: int) -> tuple[int, int]:
        """A katakana or Han match widened over the names joined to it by middle dots."""
        s, e = toks[i][0], toks[j][1]
        while s >= 2 and text[s - 1] in MIDDLE_DOTS:
            left = s - 1
            k = left
            while k > 0 and (_KATAKANA.match(text[k - 1]) or _HAN.match(text[k - 1])) and left - k < 12:
                k -= 1
            if k == left:
                break
            if _HAN.match(text[left - 1]):
                k = max(k, left - MAX_HAN_NAME)
            s = k
        while e < len(text) - 1 and text[e] in MIDDLE_DOTS:
            k = e + 1
            if _KATAKANA.match(text[k]):
                m = _KATAKANA.match(text, k)
                assert m is not None
                e = m.end()
            elif _HAN.match(text[k]):
                m2 = k
                while m2 < len(text) and _HAN.match(text[m2]) and m2 - k < MAX_HAN_NAME:
                    m2 += 1
                e = m2
            else:
                break
        return s, e
