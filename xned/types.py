"""Plain records exchanged by the library. Offsets are character offsets into the
Python string, ``end`` exclusive."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QID_RE = re.compile(r"Q[1-9][0-9]*")  # a Wikidata item id (use fullmatch)
MAX_QID_CHARS = 11  # Q + 10 digits: the KB build keys QIDs zero-padded to 10 digits


def is_qid(value: object) -> bool:
    """The one QID rule: ``Q``, a non-zero digit, at most 10 digits in all."""
    return isinstance(value, str) and len(value) <= MAX_QID_CHARS and QID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Mention:
    """A span of a document to link (given by the caller or detected)."""

    start: int
    end: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    qid: str
    label: str
    score: float
    prior: float
    similarity: float | None = None
    expert: float | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """One mention and its decision. ``qid`` is None for NIL (no entity, or below the
    threshold); ``score`` is the calibrated confidence in [0, 1] of the top candidate;
    ``corrected`` says the analyst's corrections of this mention string took part."""

    start: int
    end: int
    text: str
    qid: str | None
    label: str | None = None
    description: str | None = None
    score: float = 0.0
    prior: float = 0.0
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    corrected: bool = False
    nil_id: str | None = None  # a NIL mention's local identity (``xned.engine.nil``), where asked for

    @property
    def is_nil(self) -> bool:
        return self.qid is None


@dataclass(frozen=True, slots=True)
class Document:
    """A unit of batch input. ``mentions`` set means NED mode (link exactly these spans)."""

    text: str
    lang: str | None = None
    id: str | None = None
    mentions: tuple[Mention, ...] | None = None


@dataclass(frozen=True, slots=True)
class DocResult:
    """The links of one document, or the error that stopped it (never dropped)."""

    id: str | None
    lang: str | None
    text: str
    links: tuple[Link, ...] = ()
    error: str | None = None
    line: int | None = None  # input line of a document read from a file, where known
