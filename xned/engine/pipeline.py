"""The records the linker's stages pass on: a document prepared for linking (its mention
sets, each mention with its key and candidates), the vectors the encoder pass gave its
mentions, and the documents that failed on the way (each stage keeps going for the rest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from xned.types import Document, Mention

Span = tuple[int, int]
SpanVectors = dict[Span, np.ndarray]
T = TypeVar("T")


@dataclass(slots=True)
class Candidates:
    """One mention with its candidates (global entity indices, best prior first)."""

    mention: Mention
    key: str  # the normalized mention string (``normalize``): computed once, here
    ents: np.ndarray
    priors: np.ndarray
    dense: np.ndarray | None = None  # 1.0 where retrieval alone found the candidate
    name: np.ndarray | None = None  # cosine of the mention string and the candidate's label
    stem: bool = False  # the candidates were found only through the mention's stem key

    @property
    def span(self) -> Span:
        return self.mention.start, self.mention.end


@dataclass(slots=True)
class Prepared:
    """A document ready for the encoder pass: its mention sets (the given or detected
    mentions first; with ``also_detect`` the rule-detected ones second) and, once encoded,
    the vectors of its mentions in context by span."""

    doc: Document
    sets: list[list[Candidates]]
    vectors: SpanVectors | None = None  # None: nothing of it was encoded
    detected: SpanVectors = field(default_factory=dict)  # the trained detector's mentions

    def mentions(self) -> Iterator[Candidates]:
        for cands in self.sets:
            yield from cands


@dataclass(slots=True)
class Outcomes(Generic[T]):
    """What a stage gave each document (by index), and the exception of each it failed on."""

    done: dict[int, T] = field(default_factory=dict)
    failed: dict[int, Exception] = field(default_factory=dict)


def per_document(keys: list[int], run: Callable[[list[int]], dict[int, T]]) -> Outcomes[T]:
    """``run(keys)`` over every document at once (one batched pass); if that fails, over each
    document alone, so a failure stays with the document that caused it and the others are
    still done."""
    try:
        return Outcomes(run(keys))
    except Exception as exc:
        if len(keys) == 1:
            return Outcomes({}, {keys[0]: exc})
    out: Outcomes[T] = Outcomes()
    for k in keys:
        try:
            out.done.update(run([k]))
        except Exception as exc:
            out.failed[k] = exc
    return out


__all__ = ["Candidates", "Outcomes", "Prepared", "Span", "SpanVectors", "per_document"]
