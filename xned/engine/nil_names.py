"""Which NIL mentions are names, and how a document's names group by their structure (the
first step of NIL clustering, ``xned.engine.nil``): the same name; a first or last part of a
longer name ("Etxeberria" after "Amaia Etxeberria"; Japanese parts at the middle dot); an
acronym of a longer name. A short name that fits two longer ones stays on its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from xned.engine.normalize import normalize, undot


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
    aircraft"); in one without, one that does not start with a pronoun or demonstrative
    ("彼", "その飛行機"). Coreference of pronouns and descriptions is not name clustering."""
    t = text.strip()
    if any(ch.isupper() for ch in t):
        return True
    if any(ch.islower() for ch in t):
        return False
    anaphoric = t.startswith("同") and len(t) <= 3  # 同社, 同氏, 同指数: "the said ..."
    return bool(t) and t not in _PRONOUNS and not t.startswith(_DEMONSTRATIVES) and not anaphoric


def name_key(text: str) -> str:
    """A name's key: normalized (``normalize``), with the middle dots that separate the parts
    of a name in Japanese and Chinese as spaces ("スティーブ・ジョブズ" -> "スティーブ ジョブズ",
    so "ジョブズ" is its last part)."""
    key = normalize(text)
    return undot(key) or key


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


__all__ = ["Group", "NilMention", "ends", "group_document", "is_name", "name_key", "words"]
