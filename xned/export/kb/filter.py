"""Which entities of a Wikidata dump a KB keeps: by class, by sitelinks, by a cap on their
number; named profiles (``xned kb build --profile laptop``).

A class filter keeps an item that is an instance (P31) of a listed class or of any of its
subclasses, the subclass tree (P279) taken from the dump itself. While the dump is read, each
item's P31 values and P279 edges go to two sorted spills (bounded memory, like every other
record of the build); once every source is read the tree is complete, and the closure of the
listed classes is computed over the edge list held as two int64 arrays (16 bytes per P279
statement: about 75 MB for the whole of Wikidata). Then ``--min-sitelinks`` applies, and
``--max-entities`` keeps the items with the most sitelinks (ties: lower QID).

Only entities read from Wikidata dumps are filtered: an entity that an entity TSV/JSONL
names is always kept (a user's own list), and an anchor target of a Wikipedia dump is kept
only if its Wikidata item is. The aliases of a dropped entity go with it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from xned.errors import InputError

#: Classes of the laptop profile: the entities a news analyst needs (people, places,
#: organisations, events, works), the roots of their subclass trees.
LAPTOP_CLASSES = (
    "Q5",  # human
    "Q486972",  # human settlement
    "Q56061",  # administrative territorial entity
    "Q6256",  # country
    "Q43229",  # organization
    "Q4830453",  # business
    "Q7278",  # political party
    "Q17149090",  # armed organization
    "Q327333",  # government agency
    "Q1656682",  # event
    "Q13418847",  # historical event
    "Q386724",  # work
    "Q2221906",  # geographic location
    "Q271669",  # landform
)
PROFILES: dict[str, dict] = {
    "full": {},
    # the laptop profile embeds only entities that share a name; the others get theirs at
    # run time, when a mention needs one (``xned.engine.entity_vectors``)
    "laptop": {"classes": LAPTOP_CLASSES, "min_sitelinks": 1, "max_entities": 3_000_000, "vectors": "ambiguous"},
}


def profile_vectors(profile: str | None) -> str:
    """The ``--vectors`` rule of a profile when none is given: ``all`` unless it says."""
    return str(PROFILES.get(profile or "full", {}).get("vectors", "all"))


@dataclass(frozen=True)
class EntityFilter:
    classes: tuple[str, ...] = ()
    min_sitelinks: int = 0
    max_entities: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.classes) or self.min_sitelinks > 0 or self.max_entities is not None

    @classmethod
    def from_dict(cls, d: dict | None) -> EntityFilter | None:
        """The filter recorded in a build's options (``build.json``), if any."""
        if not d:
            return None
        return cls(tuple(d.get("classes") or ()), int(d.get("min_sitelinks") or 0), d.get("max_entities"))

    @classmethod
    def make(
        cls,
        profile: str | None = None,
        classes: list[str] | None = None,
        min_sitelinks: int | None = None,
        max_entities: int | None = None,
    ) -> EntityFilter:
        """A profile, with any option given explicitly overriding it."""
        if profile is not None and profile not in PROFILES:
            raise InputError(f"Unknown --profile {profile!r}; choose one of {', '.join(PROFILES)}.")
        base = PROFILES.get(profile or "full", {})
        picked = tuple(classes) if classes else tuple(base.get("classes", ()))
        for q in picked:
            if not (q[:1] == "Q" and q[1:].isdigit()):
                raise InputError(f"--keep-class {q!r} is not a Wikidata class id such as Q5.")
        return cls(
            picked,
            int(min_sitelinks if min_sitelinks is not None else base.get("min_sitelinks", 0)),
            max_entities if max_entities is not None else base.get("max_entities"),
        )


def subclass_closure(edges: Iterator[str], roots: list[int]) -> np.ndarray:
    """Sorted QID numbers of ``roots`` and every class below them; ``edges`` are sorted
    ``parent<TAB>child`` lines (P279 statements)."""
    parents = array("q")  # 8 bytes an edge (a list of ints takes ~36)
    children = array("q")
    for line in edges:
        p, _, c = line.partition("\t")
        parents.append(int(p))
        children.append(int(c))
    parent = np.frombuffer(parents, np.int64)
    child = np.frombuffer(children, np.int64)
    seen = np.unique(np.array(roots, np.int64))
    frontier = seen
    while len(frontier):
        lo = np.searchsorted(parent, frontier, side="left")
        hi = np.searchsorted(parent, frontier, side="right")
        if not (hi > lo).any():
            break
        found = np.unique(np.concatenate([child[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]))
        frontier = np.setdiff1d(found, seen, assume_unique=True)
        seen = np.union1d(seen, frontier)
    return seen


def kept_items(
    f: EntityFilter,
    items: Iterator[tuple[int, float]],
    classes: Iterator[str],
    closure: np.ndarray | None,
) -> np.ndarray:
    """Sorted QID numbers of the dump items ``f`` keeps. ``items``: (qnum, sitelinks) of every
    dump item in QID order; ``classes``: sorted ``qnum<TAB>class`` lines (P31)."""
    cap = f.max_entities
    kept = _TopK(cap)
    pending = _by_item(classes)  # merge join: both streams are in QID order
    head = next(pending, None)
    for qn, links in items:
        if closure is not None:
            while head is not None and head[0] < qn:
                head = next(pending, None)
            cls = head[1] if head is not None and head[0] == qn else np.zeros(0, np.int64)
            pos = np.minimum(np.searchsorted(closure, cls), len(closure) - 1) if len(closure) else cls
            if not len(cls) or not (closure[pos] == cls).any():
                continue
        if links < f.min_sitelinks:
            continue
        kept.add(qn, links)
    return kept.result()


class _TopK:
    """The QID numbers kept, in bounded memory: 16 bytes per candidate, and with a cap the
    buffer is cut back to the ``cap`` best (most sitelinks, then lowest QID) whenever it
    holds twice as many, so memory follows the cap, not the dump."""

    def __init__(self, cap: int | None):
        self.cap = cap
        self.qn: array[int] = array("q")
        self.links: array[float] = array("d")

    def add(self, qn: int, links: float) -> None:
        self.qn.append(qn)
        self.links.append(links)
        if self.cap is not None and len(self.qn) >= 2 * max(self.cap, 1 << 16):
            self._cut()

    def _cut(self) -> None:
        qn = np.frombuffer(self.qn, np.int64)
        links = np.frombuffer(self.links, np.float64)
        order = np.lexsort((qn, -links))[: self.cap]
        self.qn, self.links = array("q", qn[order].tobytes()), array("d", links[order].tobytes())

    def result(self) -> np.ndarray:
        if self.cap is not None and len(self.qn) > self.cap:
            self._cut()
        return np.sort(np.frombuffer(self.qn, np.int64).copy())


def _by_item(lines: Iterator[str]) -> Iterator[tuple[int, np.ndarray]]:
    """(qnum, its classes) from sorted ``qnum<TAB>class`` lines."""
    cur = -1
    acc: list[int] = []
    for line in lines:
        q, _, c = line.partition("\t")
        qn = int(q)
        if qn != cur:
            if acc:
                yield cur, np.array(acc, np.int64)
            cur, acc = qn, []
        acc.append(int(c))
    if acc:
        yield cur, np.array(acc, np.int64)
