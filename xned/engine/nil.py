"""Local identities for unknown entities: NIL clustering across documents.

A mention xned links to no entity of the KB gets a ``nil_id`` (``NIL:`` and ten hex digits).
The same unknown entity gets the same id in every document, run and process that links
into the same state directory; different unknown entities get different ids.

Grouping, per document then across documents:

1. **In a document**, by name structure: the same normalized name; a part of a longer name
   found earlier or later in it (its first or last words: "Etxeberria" after "Amaia
   Etxeberria"); an acronym of a longer name ("ETA" ... "Euskadi Ta Askatasuna"). A short
   name that fits two longer ones stays apart.
2. **Across documents**, a group joins a stored cluster that holds one of its names when
   their contexts agree: the cosine of the group's mean vector in context and the cluster's
   nearest context prototype is at least ``threshold`` (``short_threshold`` when the group
   has only a one-word name, or matches by part of a name). Otherwise it starts a cluster. Each document
   is compared with the clusters of its names only, through an index, never with every past
   mention: time and memory per document do not grow with the store.

The store is an SQLite database in the state directory (``STATE/nil/<base KB and encoder
id>/nil.sqlite``, see ``store_dir``): pages are read on demand, and one write transaction per batch of
documents (``BEGIN IMMEDIATE``) serializes processes, so two processes linking at once lose
no cluster and never give one name two clusters by racing. Ids are derived from the
cluster's first name and how many clusters had that name before it: the same documents give
the same ids in a fresh store.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from xned.engine import layout as L
from xned.engine.nil_names import (
    Group,
    NilMention,
    ends,
    genitives,
    group_document,
    is_name,
    name_key,
    plain_key,
    words,
)
from xned.errors import InputError

FILE = "nil.sqlite"
PREFIX = "NIL:"
# Cosine of a group's context and a cluster's nearest prototype to join it: for a name of
# several words, and for a one-word name or a match by part of a name. Chosen on the training
# files by scripts/nil_eval.py (best B-cubed F1 at precision >= 90%, the highest thresholds
# within half a point); the docs' accuracy page has the measurement.
THRESHOLD = 0.80
SHORT_THRESHOLD = 0.80
#: a one-word name that is part of more stored names than this joins none of them by part
#: (each would be compared; the time per document must not grow with the store)
MAX_PART_CLUSTERS = 32
EXAMPLES = 5  # contexts kept per cluster (xned nil list)
CONTEXT_CHARS = 60  # each side of the mention in a kept context
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
    created REAL NOT NULL, merged_into TEXT, qid TEXT
);
CREATE TABLE IF NOT EXISTS protos (cluster TEXT NOT NULL, n INTEGER NOT NULL, vec BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS protos_cluster ON protos (cluster);
CREATE INDEX IF NOT EXISTS clusters_label ON clusters (label);
CREATE TABLE IF NOT EXISTS names (
    key TEXT NOT NULL, cluster TEXT NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (key, cluster)
);
CREATE INDEX IF NOT EXISTS names_key_part ON names (key, part);
CREATE TABLE IF NOT EXISTS examples (cluster TEXT NOT NULL, doc TEXT, mention TEXT, context TEXT);
CREATE INDEX IF NOT EXISTS examples_cluster ON examples (cluster);
"""


def _blob(v: np.ndarray) -> bytes:
    return v.astype("<f2").tobytes()


def store_dir(state: Path, bundle: Path) -> Path:
    """Where the NIL clusters of ``bundle`` live in the state directory ``state``: keyed by
    the bundle's base KB and encoder (``kb/meta.json``, ``encoder/config.json``), which
    ``xned kb add`` and ``xned nil promote`` leave as they are, so clusters outlive additions
    to the bundle (corrections are keyed by the whole manifest instead)."""
    h = hashlib.sha256()
    for part in (L.KB + "/" + L.KBDir.META, L.ENCODER + "/" + L.ENCODER_CONFIG):
        f = Path(bundle) / part
        h.update(part.encode() + b"\0" + (f.read_bytes() if f.is_file() else b""))
    return Path(state) / "nil" / h.hexdigest()[:16]


class NilStore:
    """The NIL clusters of one bundle in a state directory (see the module doc)."""

    def __init__(self, directory: Path, *, threshold: float = THRESHOLD, short_threshold: float = SHORT_THRESHOLD):
        self.path = Path(directory) / FILE
        self.threshold = threshold
        self.short_threshold = short_threshold
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"The NIL clusters at {self.path} cannot be opened ({exc}); give a writable state directory "
                f"with --state DIR (or $XNED_STATE)."
            ) from None

    def _open(self) -> sqlite3.Connection:
        """The connection, in WAL mode with the schema. Two processes creating the store at
        once can find it locked where SQLite calls no busy handler (the switch to WAL): they
        retry, within the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.db.close()

    def assign(self, mentions: Iterable[NilMention], texts: Sequence[str], ids: Sequence[str | None]) -> dict:
        """The ``nil_id`` of every mention, by ``(doc, start, end)``; ``texts`` and ``ids``
        are the batch's document texts and ids (kept with example contexts). One write
        transaction for the whole batch."""
        per_doc: dict[int, list[NilMention]] = {}
        for m in mentions:
            if is_name(m.text):  # a pronoun or a description gets no identity (None)
                per_doc.setdefault(m.doc, []).append(m)
        out: dict[tuple[int, int, int], str] = {}
        if not per_doc:
            return out
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for d in sorted(per_doc):
                for g in group_document(per_doc[d]):
                    cid = self._place(g)
                    for m in g.members:
                        out[(m.doc, m.start, m.end)] = cid
                    self._example(cid, g.members[0], texts[d], ids[d])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def _resolve(self, cid: str) -> str:
        for _ in range(64):  # merge chains are short; bounded against a corrupted store
            row = self.db.execute("SELECT merged_into FROM clusters WHERE id = ?", (cid,)).fetchone()
            if row is None or row[0] is None:
                return cid
            cid = row[0]
        return cid

    def _place(self, g: Group) -> str:
        """The cluster of a document's group: the live cluster with one of its names whose
        nearest context prototype is close enough, else a new one."""
        vec = g.vector()
        short = len(words(g.keys[0])) < 2
        need = self.short_threshold if short else self.threshold
        strong = self._named(g, short)
        live = sorted(strong)
        best: tuple[float, str, int, int, np.ndarray] | None = None  # (margin, cluster, proto rowid, n, proto)
        if vec is not None and live:
            marks = ",".join("?" * len(live))
            for cid, rowid, n, blob in self.db.execute(
                f"SELECT cluster, rowid, n, vec FROM protos WHERE cluster IN ({marks})", live
            ):
                p = np.frombuffer(blob, "<f2").astype(np.float32)
                sim = float(p @ vec) / max(float(np.linalg.norm(p)), 1e-12)
                # how far above its threshold: a name match needs less context than a part match
                margin = sim - (need if strong[cid] else self.short_threshold)
                if best is None or margin > best[0]:
                    best = (margin, cid, rowid, n, p)
        n_new = len(g.members)
        if best is not None and best[0] >= 0:
            _, cid, rowid, n, p = best
            assert vec is not None
            mean = (p * n + vec * n_new) / (n + n_new)
            self.db.execute("UPDATE protos SET n = ?, vec = ? WHERE rowid = ?", (n + n_new, _blob(mean), rowid))
            self.db.execute("UPDATE clusters SET n = n + ? WHERE id = ?", (n_new, cid))
        elif vec is None and sum(strong.values()) == 1:  # no context to tell them apart: the one cluster of the name
            cid = next(c for c, st in strong.items() if st)
            self.db.execute("UPDATE clusters SET n = n + ? WHERE id = ?", (n_new, cid))
        else:
            cid = self._new_id(g.keys[0])
            self.db.execute(
                "INSERT INTO clusters (id, label, name, n, created) VALUES (?, ?, ?, ?, ?)",
                (cid, g.keys[0], g.label, n_new, time.time()),
            )
            if vec is not None:
                self.db.execute("INSERT INTO protos (cluster, n, vec) VALUES (?, ?, ?)", (cid, n_new, _blob(vec)))
        # its names, and their first and last words: a later document may name it by either alone
        rows = [(k, cid, 0) for k in g.keys] + [(w, cid, 1) for k in g.keys for w in ends(k) if w not in g.keys]
        self.db.executemany("INSERT OR IGNORE INTO names (key, cluster, part) VALUES (?, ?, ?)", rows)
        return cid

    def _named(self, g: Group, short: bool) -> dict[str, bool]:
        """The live clusters ``g`` may join, each with whether one of its names is one of
        ``g``'s (a strong match). For a one-word group also those with a longer name that
        starts or ends with it ("Etxeberria" after "Amaia Etxeberria"); for a longer group
        those named by its first or last word alone ("Barack Obama" after "Obama"): weak
        matches, held to the one-word threshold, as is a one-word name in another genitive
        form ("Fochs", "Foch"). Two longer names that only share a word ("Jean Dupont",
        "Jean Martin") never meet."""
        plain = {plain_key(m.text) for m in g.members} - set(g.keys)  # as stores before name_key kept them
        look = sorted(set(g.keys) | plain | {w for k in g.keys for w in (*ends(k), *genitives(k))})
        marks = ",".join("?" * len(look))
        query = (
            f"SELECT k.key, c.id FROM names k JOIN clusters c ON c.id = k.cluster "
            f"WHERE k.key IN ({marks}) AND k.part = ? AND c.merged_into IS NULL"
        )
        strong: dict[str, bool] = {}
        for key, cid in self.db.execute(query, [*look, 0]):
            strong[cid] = strong.get(cid, False) or key in g.keys or key in plain
        if short:
            # clusters with a longer name that has it as a word; a common first name is a word
            # of thousands: a lone "Smith" that fits more than a few stays on its own, and the
            # time per document does not grow with the store
            parts = self.db.execute(query + f" LIMIT {MAX_PART_CLUSTERS + 1}", [*look, 1]).fetchall()
            if len(parts) <= MAX_PART_CLUSTERS:
                for _, cid in parts:
                    strong.setdefault(cid, False)
        return strong

    def _new_id(self, key: str) -> str:
        """``NIL:`` + the first ten hex digits of sha256(name, ordinal): the k-th cluster
        first named ``key`` gets the same id in any store that saw the same names."""
        (k,) = self.db.execute("SELECT COUNT(*) FROM clusters WHERE label = ?", (key,)).fetchone()
        while True:
            cid = PREFIX + hashlib.sha256(f"{key}\x1f{k}".encode()).hexdigest()[:10]
            if self.db.execute("SELECT 1 FROM clusters WHERE id = ?", (cid,)).fetchone() is None:
                return cid
            k += 1

    def _example(self, cid: str, m: NilMention, text: str, doc_id: str | None) -> None:
        have = self.db.execute("SELECT COUNT(*) FROM examples WHERE cluster = ?", (cid,)).fetchone()[0]
        if have < EXAMPLES:
            a, b = max(0, m.start - CONTEXT_CHARS), min(len(text), m.end + CONTEXT_CHARS)
            self.db.execute(
                "INSERT INTO examples (cluster, doc, mention, context) VALUES (?, ?, ?, ?)",
                (cid, doc_id, m.text, text[a:b].replace("\n", " ")),
            )

    # -- management ---------------------------------------------------------------------------
    def clusters(self, limit: int | None = None) -> list[dict]:
        """The live clusters, largest first: id, label, mentions, names, example contexts."""
        rows = self.db.execute(
            "SELECT id, name, n, qid FROM clusters WHERE merged_into IS NULL ORDER BY n DESC, id"
            + (" LIMIT ?" if limit else ""),
            (limit,) if limit else (),
        ).fetchall()
        out = []
        for cid, label, n, qid in rows:
            names = [
                k
                for (k,) in self.db.execute("SELECT key FROM names WHERE cluster = ? AND part = 0 ORDER BY key", (cid,))
            ]
            ex = self.db.execute("SELECT doc, mention, context FROM examples WHERE cluster = ?", (cid,)).fetchall()
            out.append(
                {
                    "nil_id": cid,
                    "label": label,
                    "mentions": n,
                    **({"promoted_to": qid} if qid else {}),
                    "names": names,
                    "examples": [{"doc": d, "mention": m, "context": c} for d, m, c in ex],
                }
            )
        return out

    def merge(self, keep: str, other: str) -> str:
        """Merge cluster ``other`` into ``keep`` (its names, mentions, context prototypes and
        examples); later look-ups of ``other`` give ``keep``."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            keep, other = self._resolve(keep), self._resolve(other)
            for cid in (keep, other):
                if db.execute("SELECT 1 FROM clusters WHERE id = ?", (cid,)).fetchone() is None:
                    raise KeyError(cid)
            if keep != other:
                (n,) = db.execute("SELECT n FROM clusters WHERE id = ?", (other,)).fetchone()
                db.execute("UPDATE clusters SET n = n + ? WHERE id = ?", (n, keep))
                db.execute("UPDATE clusters SET merged_into = ? WHERE id = ?", (keep, other))
                db.execute(
                    "INSERT OR IGNORE INTO names (key, cluster, part) SELECT key, ?, part FROM names WHERE cluster = ?",
                    (keep, other),
                )
                for table in ("protos", "examples"):
                    db.execute(f"UPDATE {table} SET cluster = ? WHERE cluster = ?", (keep, other))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return keep

    def split(self, cid: str, names: Sequence[str]) -> str:
        """Move the full names ``names`` of cluster ``cid`` (as written or normalized) to a new
        cluster, with the examples that bear them, and return its id: later mentions of those
        names join the new one. Both keep the context prototypes (which mentions made them is
        not stored), so the names decide; the new cluster's mention count is that of its
        examples, taken from ``cid``'s. ``KeyError``: no such cluster; ``ValueError``: a name
        that is not one of its full names, or all of them (nothing would remain)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            cid = self._resolve(cid)
            row = db.execute("SELECT n FROM clusters WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise KeyError(cid)
            own = {k for (k,) in db.execute("SELECT key FROM names WHERE cluster = ? AND part = 0", (cid,))}
            keys = list(dict.fromkeys(name_key(n) for n in names))
            unknown = [k for k in keys if k not in own]
            if not keys or unknown:
                raise ValueError(
                    f"not a name of {cid}: {', '.join(unknown) or '(none given)'}; its names: {', '.join(sorted(own))}"
                )
            if set(keys) == own:
                listed = ", ".join(sorted(own))
                raise ValueError(f"these are all the names of {cid}: nothing would remain; give some of {listed}")
            moved = [
                (rowid, mention)
                for rowid, mention in db.execute("SELECT rowid, mention FROM examples WHERE cluster = ?", (cid,))
                if name_key(mention) in keys
            ]
            new = self._new_id(keys[0])
            n_new = min(max(len(moved), 1), max(int(row[0]) - 1, 1))
            display = moved[0][1] if moved else keys[0]
            db.execute(
                "INSERT INTO clusters (id, label, name, n, created) VALUES (?, ?, ?, ?, ?)",
                (new, keys[0], display, n_new, time.time()),
            )
            db.execute("UPDATE clusters SET n = MAX(n - ?, 1) WHERE id = ?", (n_new, cid))
            marks = ",".join("?" * len(keys))
            db.execute(
                f"UPDATE names SET cluster = ? WHERE cluster = ? AND part = 0 AND key IN ({marks})", (new, cid, *keys)
            )
            kept = own - set(keys)
            for w in {w for k in keys for w in ends(k)} - set(keys):  # the moved names' first and last words
                db.execute("INSERT OR IGNORE INTO names (key, cluster, part) VALUES (?, ?, 1)", (w, new))
                if w not in kept and not any(w in ends(k) for k in kept):
                    db.execute("DELETE FROM names WHERE key = ? AND cluster = ? AND part = 1", (w, cid))
            db.execute(
                "INSERT INTO protos (cluster, n, vec) SELECT ?, n, vec FROM protos WHERE cluster = ?", (new, cid)
            )
            db.executemany("UPDATE examples SET cluster = ? WHERE rowid = ?", [(new, r) for r, _ in moved])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return new

    def names_of(self, cid: str) -> list[str]:
        """The surface names of a cluster's mentions (its examples) and its display name."""
        (name,) = self.db.execute("SELECT name FROM clusters WHERE id = ?", (cid,)).fetchone()
        seen = [name] + [m for (m,) in self.db.execute("SELECT mention FROM examples WHERE cluster = ?", (cid,))]
        return list(dict.fromkeys(seen))

    def promoted(self, cid: str, qid: str) -> None:
        """Record that cluster ``cid`` became the KB entity ``qid`` (``xned nil promote``)."""
        self.db.execute("UPDATE clusters SET qid = ? WHERE id = ?", (qid, cid))

    def resolve(self, cid: str) -> str | None:
        """The live cluster an id stands for now (after merges), None if unknown."""
        row = self.db.execute("SELECT 1 FROM clusters WHERE id = ?", (cid,)).fetchone()
        return None if row is None else self._resolve(cid)


def local_qid(nil_id: str) -> str:
    """The QID a promoted cluster gets in the bundle: ``Q9`` and nine digits from its id, a
    range Wikidata will not reach for many years (its items are numbered below 200 million)."""
    return "Q9" + str(int(nil_id.removeprefix(PREFIX), 16) % 10**9).zfill(9)


__all__ = ["NilMention", "NilStore", "group_document", "is_name", "local_qid"]
