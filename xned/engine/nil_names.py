"""Which NIL mentions are names, and how a document's names group by their structure (the
first step of NIL clustering, ``xned.engine.nil``): the same name; a first or last part of a
longer name ("Etxeberria" after "Amaia Etxeberria"; Japanese parts at the middle dot); an
acronym of a longer name. A short name that fits two longer ones stays on its own.

A name's key is the name without what surrounds it in a mention (``name_key``): titles and
honorifics and their abbreviations ("M. Ador", "Hr. de Longrée", "Apple CEO Steve Jobs"), an
apposition after a comma ("Nashville, Tenn.", "Ford's chief executive, William Ford"), a
possessive ("Apsilanti's"), a leading article; in Japanese and Chinese, whose noun phrases end
in their head, the last name after the particles and commas of a description
("ロサンゼルスを拠点とするノースロップ・グラマン" -> "ノースロップ グラマン") without an honorific after
it ("オバマ大統領", "ジョブズ氏"), and a katakana name of two parts or more at its end
without what is written against it ("同社CEOスティーブ・ジョブズ" -> "スティーブ ジョブズ")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from xned.engine.normalize import normalize, undot
from xned.engine.person import TITLES


@dataclass
class NilMention:
    """A mention linked to no entity: where it is and its vector in context (None: not encoded)."""

    doc: int  # index of its document in the batch
    start: int
    end: int
    text: str
    vector: np.ndarray | None = None


@dataclass
class Group:
    members: list[NilMention]
    keys: list[str] = field(default_factory=list)  # normalized names, longest first

    @property
    def label(self) -> str:
        return max((m.text for m in self.members), key=len)

    def vector(self) -> np.ndarray | None:
        vecs = [m.vector for m in self.members if m.vector is not None]
        if not vecs:
            return None
        v = np.mean(np.stack(vecs).astype(np.float32), axis=0)
        return v / max(float(np.linalg.norm(v)), 1e-12)


#: pronouns and demonstratives that refer without naming (CJK scripts have no case to tell a
#: name from them): whole mentions, and the starts of descriptions ("その飛行機", "同指数")
_PRONOUNS = {"彼", "彼女", "私", "僕", "我々", "私たち", "それ", "これ", "あれ", "他", "她", "它", "我", "他们"}
_DEMONSTRATIVES = ("その", "この", "あの", "それ", "これ", "彼の", "彼女の", "这", "那", "该")


def is_name(text: str) -> bool:
    """Whether a mention reads as a name, the kind of mention that gets a NIL identity: in a
    script with case, one with a capital letter ("Etxeberria", "iPod", not "he", "the
    aircraft") that is no pronoun ("He", "Il") and no article before common nouns only ("The
    aircraft", "La compagnie"); in one without, one that does not start with a pronoun or demonstrative
    ("彼", "その飛行機"). Coreference of pronouns and descriptions is not name clustering."""
    t = text.strip()
    if t.lower() in _CASED_PRONOUNS and not (len(t) > 1 and t.isupper()):  # "US", "ELLE" are names
        return False
    first_rest = t.split(None, 1)
    if len(first_rest) == 2 and first_rest[0].lower() in _DETERMINERS and not any(ch.isupper() for ch in first_rest[1]):
        return False  # a description: an article and common nouns
    if any(ch.isupper() for ch in t):
        return True
    if any(ch.islower() for ch in t):
        return False
    anaphoric = t.startswith("同") and len(t) <= 3  # 同社, 同氏, 同指数: "the said ..."
    if not t or t in _PRONOUNS or t.startswith(_DEMONSTRATIVES) or anaphoric:
        return False
    # a description that ends in a common noun: particles, and no name at its end
    # ("世界最大の旅客機", "新しい航空機"; but "...とするノースロップ・グラマン" ends in a name)
    return not (_KANA_PARTICLE.search(t) and not _NAME_CHARS.search(_cjk_core(normalize(t))))


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: personal pronouns of cased scripts, capitalized at a sentence start ("He", "Il", "Er"):
#: whole mentions
_CASED_PRONOUNS = _set(
    "i he she it we they you me him her us them his its our their "  # en
    "il elle ils elles je nous vous on "  # fr
    "er sie es wir ich du ihr "  # de
    "él ella ellos ellas yo nosotros ustedes lui lei loro io noi voi"  # es, it
)


#: abbreviations, offices and ranks a mention of a name carries, beside ``person.TITLES``
#: ("M." is French "Monsieur")
_ABBREVIATIONS = _set(
    "m mm hr hrn fr frl cpt cfo coo chief executive officer "
    # ranks and clergy of several languages ("Général de Gaulle", "Marschall Foch", "l'abbé Georgel")
    "général generale marschall maréchal mariscal maresciallo oberst colonel coronel colonnello admiral "
    "amiral almirante ammiraglio capitaine capitán capitano commandant kommandant lieutenant leutnant "
    "obergeneral oberbefehlshaber feldmarschall abbé l'abbé abbe pfarrer pastor pasteur curé bishop bischof "
    "évêque cardinal kardinal baron baronin graf gräfin comte comtesse count countess duke herzog duc"
)
_TITLE_WORDS = TITLES | _ABBREVIATIONS
_ARTICLES = _set("the der die das le la les l' el los las il lo gli i")
#: articles and determiners that start a description when the words after them are lower case
#: ("The aircraft", "The world's largest passenger aircraft", "La compagnie")
_DETERMINERS = _ARTICLES | _set(
    "a an this that these those its his her their our un une ce cet cette ces son sa ses leur leurs "
    "una este esta estos estas su sus"
)
#: honorifics and titles written after a Japanese or Chinese name
_CJK_SUFFIXES = (
    "大統領",
    "首相",
    "社長",
    "会長",
    "総裁",
    "長官",
    "議員",
    "知事",
    "市長",
    "教授",
    "博士",
    "選手",
    "監督",
    "氏",
    "さん",
    "様",
    "ceo",
)
#: what separates a CJK description from the name it ends in: kana particles, commas
_CJK_SPLIT = re.compile(r"[\u3041-\u309f]+|[、，,]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_KANA_PARTICLE = re.compile(r"[\u3041-\u309f]")
#: a katakana name of two parts or more at the end of a key (its middle dots made spaces)
_KATAKANA_NAME = re.compile(r"[\u30a1-\u30fa\u30fc]+(?: [\u30a1-\u30fa\u30fc]+)+$")
#: what a CJK name carries that a common noun does not: katakana, Latin letters, digits
_NAME_CHARS = re.compile(r"[\u30a0-\u30ffA-Za-z0-9]")
_EDGE_PUNCT = ".,:;!?\"“”«»()[]'’"
_DOTTED = re.compile(r"(?:\w\.)+\w")


def plain_key(text: str) -> str:
    """A name normalized (``normalize``), with the middle dots that separate the parts of a
    name in Japanese and Chinese as spaces ("スティーブ・ジョブズ" -> "スティーブ ジョブズ", so
    "ジョブズ" is its last part): the naive key, one cluster per key."""
    key = normalize(text)
    return undot(key) or key


def _title(word: str) -> bool:
    """A title or honorific, also in the German genitive ("Generals Düpont", "Marschalls Foch")."""
    return word in _TITLE_WORDS or (word.endswith("s") and word[:-1] in _TITLE_WORDS)


def _cased_core(key: str) -> str:
    parts = [p.strip() for p in key.split(",")]
    if len(parts) > 1:  # an apposition: the part that is no title
        first = [w.strip(_EDGE_PUNCT) for w in parts[0].split()]
        titled = bool(first) and _title(first[-1])  # "Ford's chief executive officer, William Ford"
        key = parts[-1] if titled and parts[-1] else parts[0]
    words_ = []
    for raw in key.split():
        w = raw[:-2] if raw.endswith(("'s", "’s")) else raw  # a possessive
        w = w.strip(_EDGE_PUNCT)
        if _DOTTED.fullmatch(w):
            w = w.replace(".", "")  # "s.f." -> "sf"
        if w.startswith(("al-", "el-")) and len(w) > 5:
            w = w[3:]  # "al-Maliki" -> "maliki"
        if w:
            words_.append(w)
    # everything up to the last title or article before the name ("apple ceo steve jobs")
    cut = 0
    for i, w in enumerate(words_[:-1]):
        if _title(w) or (i == 0 and w in _ARTICLES):
            cut = i + 1
    name = words_[cut:]
    if len(name) > 2:  # middle initials: "Gerald R. Ford" is "Gerald Ford"
        name = [name[0], *(w for w in name[1:-1] if len(w) > 1), name[-1]]
    return " ".join(name)


def _cjk_core(key: str) -> str:
    segments = [seg.strip() for seg in _CJK_SPLIT.split(key) if seg.strip()]
    core = segments[-1] if segments else key
    for suffix in _CJK_SUFFIXES:
        if core.endswith(suffix) and len(core) > len(suffix):
            core = core[: -len(suffix)].strip()
            break
    # a description written against the name it ends in, with no particle between:
    # "同社CEOスティーブ・ジョブズ", "アップル社共同創設者スティーブ・ジョブズ"
    if (m := _KATAKANA_NAME.search(core)) is not None and m.start() > 0:
        core = m.group()
    return core


def name_key(text: str) -> str:
    """A name's key: ``plain_key`` without what surrounds the name in the mention (see the
    module doc); the plain key where nothing is left."""
    key = plain_key(text)
    core = _cjk_core(key) if _CJK.search(key) else _cased_core(key)
    return core or key


def genitives(key: str) -> tuple[str, ...]:
    """The other form of a one-word name with or without a genitive "s" ("Fochs", "Foch"):
    the same name where it is found (a store or a document holds the other form)."""
    if " " in key or len(key) < 4 or not key.isalpha() or _CJK.search(key):
        return ()
    return (key[:-1],) if key.endswith("s") else (key + "s",)


def words(key: str) -> list[str]:
    return key.split()


def ends(key: str) -> tuple[str, ...]:
    """The first and last words of a name of several words (none of a one-word name)."""
    parts = words(key)
    return (parts[0], parts[-1]) if len(parts) > 1 else ()


def _acronym(text: str) -> str | None:
    letters = text.replace(".", "")
    return letters.lower() if 2 <= len(letters) <= 8 and letters.isalpha() and letters.isupper() else None


def _initials(text: str) -> str:
    return "".join(w[0] for w in text.split() if w[:1].isupper()).lower()


def group_document(mentions: Sequence[NilMention]) -> list[Group]:
    """A document's NIL mentions grouped by name structure (see the module doc)."""
    groups: list[Group] = []
    by_key: dict[str, Group] = {}
    order = sorted(mentions, key=lambda m: (-len(words(name_key(m.text))), m.start))
    for m in order:
        key = name_key(m.text)
        if not key:
            continue
        if key in by_key:
            by_key[key].members.append(m)
            continue
        same = [by_key[k] for k in genitives(key) if k in by_key]
        if same:
            same[0].members.append(m)
            same[0].keys.append(key)
            by_key[key] = same[0]
            continue
        parts = words(key)
        fits = []
        acro = _acronym(m.text)
        for g in groups:
            full = words(g.keys[0])
            part = len(full) > len(parts) and parts in (full[: len(parts)], full[-len(parts) :])
            initials = acro is not None and len(full) >= 2 and _initials(g.label) == acro
            if part or initials:
                fits.append(g)
        if len(fits) == 1:
            fits[0].members.append(m)
            fits[0].keys.append(key)
            by_key[key] = fits[0]
        else:
            g = Group([m], [key])
            groups.append(g)
            by_key[key] = g
    return groups


__all__ = ["Group", "NilMention", "ends", "genitives", "group_document", "is_name", "name_key", "plain_key", "words"]
