"""The experts' training contexts, read in one streaming pass that a kill does not lose.

``Collector`` turns training documents into mention-in-context vectors: only mentions of
entities an expert can have as a class (``wanted_entities``), at most ``max_per_entity``
per entity in a seeded reservoir that decides *before* encoding (so a popular entity's later
mentions cost a parse, not an encoder pass). ``HeldDocs`` keeps the held-out documents for
calibration in a file, not in memory.

``Checkpoint`` saves the whole pass state (documents consumed, the vectors kept, the
reservoir's counts and random state, the held-out file's length) after a batch is encoded,
every ``every`` seconds and at the end of the pass, atomically; ``--resume`` reloads it,
skips the documents already consumed (they are parsed again, not encoded) and continues.
Because the state is taken between batches and the random draws are restored, a resumed
run writes the same bytes as one that was never stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from xned.errors import InputError
from xned.export.training_docs import UNRESOLVED, TrainDoc
from xned.fsutil import atomic_write_text, fsync_dir, replace_dir
from xned.logs import Meter

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder
    from xned.engine.kb import KB
    from xned.engine.linker import Linker


@dataclass
class Examples:
    """Mention-in-context vectors of training mentions (capped per entity). ``held`` marks
    vectors from held-out documents; ``seen`` / ``seen_kept`` count every mention of an
    entity (all documents / without the held-out ones), for the experts' prior."""

    ents: list[int] = field(default_factory=list)
    vecs: list[np.ndarray | None] = field(default_factory=list)  # None until its batch is encoded
    held: list[bool] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen_kept: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    docs: int = 0
    mentions: int = 0  # of wanted entities, in the KB
    encoded: int = 0  # of those, the ones the reservoir took when they came (so were encoded)
    unknown: int = 0

    def arrays(self, *, without_held: bool = False) -> tuple[np.ndarray, np.ndarray]:
        vecs = [v for v in self.vecs if v is not None]
        if len(vecs) != len(self.vecs):
            raise RuntimeError("training vectors read before their batch was encoded")
        dim = vecs[0].shape[-1] if vecs else 0
        keep = [i for i, h in enumerate(self.held) if not (without_held and h)]
        x = np.stack([vecs[i] for i in keep]).astype(np.float32) if keep else np.zeros((0, dim), np.float32)
        return np.asarray([self.ents[i] for i in keep], np.int64), x


def wanted_entities(kb: KB) -> np.ndarray:
    """Per KB entity, whether it is a candidate of an alias with two or more candidates in
    some table: the only entities an expert can have as a class (``fit.expert_sets``), so
    the only ones whose contexts are worth encoding."""
    wanted = np.zeros(len(kb), bool)
    for table, offset in kb.tables_for(None):
        offs = np.asarray(table.offsets, np.int64)
        if len(offs) < 2:
            continue
        sizes = np.diff(offs)
        rows = np.repeat(sizes >= 2, sizes)
        wanted[np.asarray(table.cands, np.int64)[rows] + offset] = True
    return wanted


Spans = list[list[tuple[int, int]]]


class Encoding(Protocol):
    """Where the mention contexts are encoded: ``submit`` a batch (texts, spans per text),
    get its vectors back with ``result``, in the order submitted; at most ``in_flight``
    batches are left pending (0: encoded at once, here)."""

    in_flight: int

    def submit(self, texts: list[str], spans: Spans) -> Any: ...

    def result(self, handle: Any) -> list[np.ndarray]: ...

    def close(self) -> None:
        """Release what encodes (the pass is over; a cluster's CPUs go to the model fits)."""


@dataclass
class LocalEncoding:
    """The bundle's encoder in this process."""

    encoder: Encoder
    in_flight: int = 0

    def submit(self, texts: list[str], spans: Spans) -> Any:
        return self.encoder.embed_mentions(texts, spans)

    def result(self, handle: Any) -> list[np.ndarray]:
        return list(handle)

    def close(self) -> None:
        pass


class Collector:
    """One pass over training documents (see the module docstring): ``add`` each, then
    ``finish``; ``ex`` holds the result. ``add`` returns True when it left no batch being
    filled (a checkpoint can be taken there). ``encoding`` says where contexts are encoded
    (default: here; ``xned.integrations.ray.RayEncoding``: on a Ray cluster); their vectors
    are written in the order the batches were made, so the result is the same."""

    def __init__(
        self,
        linker: Linker,
        *,
        is_held: Callable[[str], bool],
        max_per_entity: int = 64,
        seed: int = 0,
        batch_docs: int = 16,
        wanted: np.ndarray | None = None,
        encoding: Encoding | None = None,
    ):
        if linker.encoder is None:
            raise InputError(f"Bundle {linker.root} has no encoder; experts need mention-in-context vectors.")
        self.linker, self.is_held = linker, is_held
        self.encoding: Encoding = encoding if encoding is not None else LocalEncoding(linker.encoder)
        self.max_per_entity, self.batch_docs, self.wanted = max_per_entity, batch_docs, wanted
        self.rng = np.random.default_rng(seed)
        self.ex = Examples()
        self.slots: dict[int, list[int]] = defaultdict(list)  # entity -> positions in ex.vecs
        self.chunk: list[tuple[str, list[tuple[int, int, int]]]] = []  # text, (start, end, position)
        self.pending: deque[tuple[Any, list[list[int]]]] = deque()  # submitted batches, oldest first

    def _place(self, ent: int, held: bool) -> int | None:
        """Where the reservoir puts this mention's vector, decided before it is encoded (the
        draw does not depend on the vector): a new slot, a slot it replaces, or None."""
        ex = self.ex
        n = ex.seen[ent]
        ex.seen[ent] = n + 1
        if not held:
            ex.seen_kept[ent] += 1
        mine = self.slots[ent]
        if len(mine) < self.max_per_entity:
            mine.append(len(ex.vecs))
            ex.vecs.append(None)
            ex.ents.append(ent)
            ex.held.append(held)
            return mine[-1]
        j = int(self.rng.integers(0, n + 1))
        if j < self.max_per_entity:
            ex.held[mine[j]] = held
            return mine[j]
        return None

    def _flush(self) -> None:
        texts = [t for t, _ in self.chunk]
        spans = [[(s, e) for s, e, _ in sp] for _, sp in self.chunk]
        positions = [[pos for _, _, pos in sp] for _, sp in self.chunk]
        self.pending.append((self.encoding.submit(texts, spans), positions))
        self.ex.encoded += sum(len(sp) for _, sp in self.chunk)
        self.chunk.clear()
        while len(self.pending) > self.encoding.in_flight:
            self._apply_oldest()

    def _apply_oldest(self) -> None:
        handle, positions = self.pending.popleft()
        for pos, vecs in zip(positions, self.encoding.result(handle), strict=True):
            for p, v in zip(pos, vecs, strict=True):  # in order: a later mention replaces
                self.ex.vecs[p] = v.astype(np.float16)

    def drain(self) -> None:
        """Wait for every submitted batch and write its vectors."""
        while self.pending:
            self._apply_oldest()

    def add(self, doc: TrainDoc) -> bool:
        ex, kb = self.ex, self.linker.kb
        ex.docs += 1
        held = self.is_held(doc.id)
        sp = []
        for s, e, qid in doc.spans:
            if qid is None or qid == UNRESOLVED:
                continue
            ent = kb.index(qid)
            if ent < 0:
                ex.unknown += 1
                continue
            if (self.wanted is not None and not self.wanted[ent]) or not 0 <= s < e <= len(doc.text):
                continue
            ex.mentions += 1
            if (pos := self._place(ent, held)) is not None:
                sp.append((s, e, pos))
        if sp:
            self.chunk.append((doc.text, sp))
        if len(self.chunk) >= self.batch_docs:
            self._flush()
        return not self.chunk

    def finish(self) -> Examples:
        """The examples, every batch encoded; the encoding is closed."""
        if self.chunk:
            self._flush()
        self.drain()
        self.encoding.close()
        return self.ex

    def progress(self) -> str:
        ex = self.ex
        return f"{ex.mentions:,} mentions, {ex.encoded:,} encoded, {len(self.slots):,} entities"

    # -- state -------------------------------------------------------------------------

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the pass state's arrays into ``folder``; returns its JSON part."""
        ex = self.ex
        if self.chunk:
            raise RuntimeError("a checkpoint between batches only")
        self.drain()
        vecs = [v for v in ex.vecs if v is not None]
        dim = vecs[0].shape[-1] if vecs else 0
        arrays: dict[str, np.ndarray] = {
            "ents": np.asarray(ex.ents, np.int64),
            "vecs": np.stack(vecs).astype(np.float16) if vecs else np.zeros((0, dim), np.float16),
            "held": np.asarray(ex.held, bool),
            "seen": np.asarray(list(ex.seen.items()), np.int64).reshape(-1, 2),
            "seen_kept": np.asarray(list(ex.seen_kept.items()), np.int64).reshape(-1, 2),
        }
        for name, arr in arrays.items():
            with open(folder / f"{name}.npy", "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        return {
            "rng": self.rng.bit_generator.state,
            "docs": ex.docs,
            "mentions": ex.mentions,
            "encoded": ex.encoded,
            "unknown": ex.unknown,
        }

    def load(self, folder: Path, state: dict[str, Any]) -> None:
        """Restore what ``save`` wrote (a fresh collector with the same options)."""
        arrays = {
            n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in ("ents", "vecs", "held", "seen", "seen_kept")
        }
        ex = self.ex
        ex.ents = [int(e) for e in arrays["ents"]]
        ex.vecs = list(arrays["vecs"])
        ex.held = [bool(h) for h in arrays["held"]]
        if not len(ex.ents) == len(ex.vecs) == len(ex.held):
            raise InputError(f"Checkpoint {folder} is inconsistent; remove it and start again (without --resume).")
        ex.seen = defaultdict(int, {int(a): int(b) for a, b in arrays["seen"]})
        ex.seen_kept = defaultdict(int, {int(a): int(b) for a, b in arrays["seen_kept"]})
        ex.docs, ex.mentions = int(state["docs"]), int(state["mentions"])
        ex.encoded, ex.unknown = int(state["encoded"]), int(state["unknown"])
        self.slots = defaultdict(list)
        for pos, e in enumerate(ex.ents):  # slots were filled in this order
            self.slots[e].append(pos)
        self.rng.bit_generator.state = state["rng"]


#: held-out documents kept for calibration, at most (the fit needs a few thousand mentions;
#: analysing more costs time and memory in calibration, not accuracy)
CALIBRATION_DOCS = 2000


class HeldDocs:
    """The held-out documents calibration reads: the first ``cap`` offered, appended to
    ``path`` (JSON lines) as they come and read back once the pass is over."""

    def __init__(self, path: Path, cap: int, *, ids: list[str] | None = None):
        """A fresh file at ``path``, or with ``ids`` (a resumed run) the checkpoint's copy
        already there, holding those documents."""
        self.path, self.cap = path, cap
        self.ids: set[str] = set(ids or ())  # at most ``cap``
        if ids is None:
            path.write_text("", encoding="utf-8")

    @property
    def count(self) -> int:
        return len(self.ids)

    def offer(self, d: TrainDoc) -> None:
        if len(self.ids) >= self.cap or d.id in self.ids:
            return
        self.ids.add(d.id)
        row = {"id": d.id, "lang": d.lang, "text": d.text, "spans": [list(x) for x in d.spans], "partial": d.partial}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def holds(self, doc_id: str) -> bool:
        return doc_id in self.ids

    def read(self) -> Iterator[TrainDoc]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                spans = [(int(a), int(b), q) for a, b, q in r["spans"]]
                yield TrainDoc(r["id"], r["lang"], r["text"], spans, bool(r["partial"]))


class Checkpoint:
    """A pass state in ``folder`` (``state.json`` + the collector's arrays + the held-out
    file), replaced whole on each save: a kill leaves the last complete one."""

    STATE = "state.json"
    HELD = "held.jsonl"

    def __init__(self, folder: Path, key: str, every: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self.folder, self.key, self.every, self.clock = folder, key, every, clock
        self.work = folder.with_name(folder.name + ".work")  # the live held-out file
        self.last = clock()

    def exists(self) -> bool:
        return (self.folder / self.STATE).is_file()

    def start(self, resume: bool) -> dict[str, Any] | None:
        """The saved state to resume from (None: start afresh, removing any old one)."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        if not resume or not self.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        state = json.loads((self.folder / self.STATE).read_text(encoding="utf-8"))
        if state.get("key") != self.key:
            raise InputError(
                f"The checkpoint in {self.folder} is of another run (other input files, KB or options); "
                f"run again without --resume to start over."
            )
        shutil.copyfile(self.folder / self.HELD, self.work / self.HELD)
        return dict(state)

    @property
    def held_path(self) -> Path:
        return self.work / self.HELD

    def due(self) -> bool:
        return self.clock() - self.last >= self.every

    def save(self, collector: Collector, held: HeldDocs, consumed: int) -> None:
        """Save the state after ``consumed`` documents of the input stream."""
        tmp = self.folder.with_name(self.folder.name + ".incomplete")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = collector.save(tmp)
        shutil.copyfile(held.path, tmp / self.HELD)
        state.update(key=self.key, consumed=consumed, held_ids=sorted(held.ids))
        atomic_write_text(tmp / self.STATE, json.dumps(state, sort_keys=True) + "\n")
        fsync_dir(tmp)
        replace_dir(tmp, self.folder)
        self.last = self.clock()

    def remove(self) -> None:
        for d in (self.folder, self.work, self.folder.with_name(self.folder.name + ".incomplete")):
            shutil.rmtree(d, ignore_errors=True)


def read_pass(
    docs: Iterable[TrainDoc],
    collector: Collector,
    held: HeldDocs,
    is_held_out: Callable[[str], bool],
    skip: int = 0,
    checkpoint: Checkpoint | None = None,
    meter: Meter | None = None,
) -> int:
    """The reading pass: every document to ``collector`` (the held-out ones to ``held``
    first), the first ``skip`` only parsed (read before the checkpoint a resumed run starts
    from); the state saved between batches when ``checkpoint`` is due, and at the end (a
    kill while fitting resumes there). Returns the documents consumed."""
    consumed = 0
    for d in docs:
        consumed += 1
        if consumed <= skip:
            continue
        if is_held_out(d.id):
            held.offer(d)
        between = collector.add(d)
        if checkpoint is not None and between and checkpoint.due():
            checkpoint.save(collector, held, consumed)
        if meter is not None:
            meter.tick(consumed, collector.progress())
    collector.finish()
    if checkpoint is not None:
        checkpoint.save(collector, held, consumed)
    return consumed
