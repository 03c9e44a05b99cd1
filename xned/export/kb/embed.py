"""Entity embeddings for the KB build: the passage embedded per entity, an on-disk cache keyed
by the encoder's sha256, and the embedder the KB writer calls batch by batch."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xned.engine.encoder import Encoder
from xned.engine.entity_vectors import passage
from xned.export.kb.writer import EntityRow
from xned.fsutil import sha256_file


def entity_text(row: EntityRow) -> str:
    """The passage embedded for an entity (``xned.engine.entity_vectors.passage``: the run
    time embeds the same text for an entity stored without a vector)."""
    return passage(row.qid, row.label, row.description, row.type)


class VectorCache:
    """Entity embeddings on disk, keyed by sha1(passage text), one SQLite file per encoder
    (the directory is named by the sha256 of the encoder's files: model, tokenizer and
    config), so a rebuild with the same encoder only embeds new or changed entities. Memory
    holds one batch, whatever the cache size; every batch is committed, so a build that is
    killed keeps what it embedded (resumable). A cache file that cannot be read is moved
    aside with a warning and a new one started."""

    def __init__(self, root: Path, encoder_dir: Path):
        import sqlite3

        h = hashlib.sha256()
        for name in ("model.onnx", "tokenizer.json", "config.json"):
            if (encoder_dir / name).is_file():
                h.update(name.encode() + b"\0" + bytes.fromhex(sha256_file(encoder_dir / name)))
        self.dir = Path(root) / h.hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "vectors.sqlite"
        try:
            self.db = sqlite3.connect(path)
            self.db.execute("CREATE TABLE IF NOT EXISTS v (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        except sqlite3.DatabaseError as exc:
            path.replace(path.with_suffix(".corrupted"))
            warnings.warn(f"Vector cache {path} is unreadable ({exc}); moved aside, starting a new one.", stacklevel=2)
            self.db = sqlite3.connect(path)
            self.db.execute("CREATE TABLE IF NOT EXISTS v (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha1(text.encode("utf-8")).digest()

    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i : i + 500]
            rows = self.db.execute(f"SELECT k, v FROM v WHERE k IN ({','.join('?' * len(part))})", part)
            for k, v in rows:
                vec = np.frombuffer(v, "<f2")
                if len(vec) == dim:  # else a row of another shape: embedded again
                    out[bytes(k)] = vec
        return out

    def put_many(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO v VALUES (?, ?)", [(k, np.asarray(v, "<f2").tobytes()) for k, v in items]
        )
        self.db.commit()

    def save(self) -> None:
        self.db.commit()


class EntityEmbedder:
    """Embeds ``EntityRow`` batches as passages (``__call__`` -> float32 ``[n, dim]``), through
    the vector cache when one is given. ``shared_only`` tells the KB writer to embed only the
    entities that share a name with another (``kb build --vectors ambiguous``); ``stats``
    counts what the build reports."""

    def __init__(
        self,
        encoder_dir: Path,
        *,
        threads: int | None = None,
        batch: int = 4096,
        progress: Callable[[int, int], None] | None = None,
        cache: Path | None = None,
        shared_only: bool = False,
    ):

        # token-budget batches over length-sorted passages (1.3x the entities/s of 64 rows)
        self.encoder = Encoder(encoder_dir, threads=threads)
        self.encoder.batch_tokens = 2048
        self.cache = VectorCache(cache, encoder_dir) if cache is not None else None
        self.batch = batch
        self.progress = progress
        self.shared_only = shared_only
        self.stats = {"entities": 0, "encoded": 0, "seconds": 0.0}

    def __call__(self, rows: list[EntityRow]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._embed(rows)
        finally:
            self.stats["entities"] += len(rows)
            self.stats["seconds"] += time.perf_counter() - t0

    def flush(self) -> None:
        if self.cache is not None:
            self.cache.save()

    def _embed(self, rows: list[EntityRow]) -> np.ndarray:
        enc, vc, batch = self.encoder, self.cache, self.batch
        texts = [entity_text(r) for r in rows]
        known: dict[bytes, np.ndarray] = {}
        if vc is not None:
            keys = [vc.key(t) for t in texts]
            known = vc.get_many(keys, enc.dim)
            todo = [i for i, k in enumerate(keys) if k not in known]
        else:
            todo = list(range(len(texts)))
        fresh: list[np.ndarray] = []
        self.stats["encoded"] += len(todo)
        for i in range(0, len(todo), batch):
            fresh.append(enc.embed_texts([texts[j] for j in todo[i : i + batch]], "passage"))
            if self.progress is not None:
                self.progress(min(i + batch, len(todo)), len(todo))
        new = np.concatenate(fresh) if fresh else np.zeros((0, enc.dim), np.float32)
        if vc is None:
            return new
        fresh_items = [(keys[j], v.astype(np.float16)) for j, v in zip(todo, new, strict=True)]
        vc.put_many(fresh_items)
        known.update(fresh_items)
        if not rows:
            return np.zeros((0, enc.dim), np.float32)
        return np.stack([known[k] for k in keys]).astype(np.float32)
