"""Bundle-level build steps shared by the CLI: KB build into a bundle, manifest update."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from xned import __version__
from xned.engine.bundle import MANIFEST, read_manifest, write_manifest
from xned.errors import BundleError, InputError, KBBuildError
from xned.export.kb_build import build_kb
from xned.export.kb_builder import BuildReport
from xned.export.kb_writer import EntityRow
from xned.fsutil import fsync_dir


def entity_text(row: EntityRow) -> str:
    """The passage embedded for an entity: "label: description" ("label: type" or the label
    alone when there is no description)."""
    label = row.label or row.qid
    extra = row.description or row.type
    return f"{label}: {extra}" if extra else label


class VectorCache:
    """Entity embeddings on disk, keyed by sha1(passage text), one SQLite file per encoder
    (the directory is named by the sha256 of the encoder's files: model, tokenizer and
    config), so a rebuild with the same encoder only embeds new or changed entities. Memory
    holds one batch, whatever the cache size; every batch is committed, so a build that is
    killed keeps what it embedded (resumable). A cache file that cannot be read is moved
    aside with a warning and a new one started."""

    def __init__(self, root: Path, encoder_dir: Path):
        import sqlite3
        import warnings

        from xned.engine.bundle import sha256_file

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


def make_embedder(
    encoder_dir: Path,
    *,
    threads: int | None = None,
    batch: int = 256,
    progress=None,
    cache: Path | None = None,
    shared_only: bool = False,
):
    from xned.engine.encoder import Encoder

    enc = Encoder(encoder_dir, threads=threads, batch_size=64)
    vc = VectorCache(cache, encoder_dir) if cache is not None else None

    stats = {"entities": 0, "encoded": 0, "seconds": 0.0}  # what the build reports

    def embed(rows: list[EntityRow]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return _embed(rows)
        finally:
            stats["entities"] += len(rows)
            stats["seconds"] += time.perf_counter() - t0

    def _embed(rows: list[EntityRow]) -> np.ndarray:
        texts = [entity_text(r) for r in rows]
        known: dict[bytes, np.ndarray] = {}
        if vc is not None:
            keys = [vc.key(t) for t in texts]
            known = vc.get_many(keys, enc.dim)
            todo = [i for i, k in enumerate(keys) if k not in known]
        else:
            todo = list(range(len(texts)))
        fresh: list[np.ndarray] = []
        stats["encoded"] += len(todo)
        for i in range(0, len(todo), batch):
            fresh.append(enc.embed_texts([texts[j] for j in todo[i : i + batch]], "passage"))
            if progress is not None:
                progress(min(i + batch, len(todo)), len(todo))
        new = np.concatenate(fresh) if fresh else np.zeros((0, enc.dim), np.float32)
        if vc is None:
            return new
        fresh_items = [(keys[j], v.astype(np.float16)) for j, v in zip(todo, new, strict=True)]
        vc.put_many(fresh_items)
        known.update(fresh_items)
        if not rows:
            return np.zeros((0, enc.dim), np.float32)
        return np.stack([known[k] for k in keys]).astype(np.float32)

    embed.flush = vc.save if vc is not None else (lambda: None)  # type: ignore[attr-defined]
    embed.shared_only = shared_only  # type: ignore[attr-defined]  # kb_writer: embed only entities sharing a name
    embed.stats = stats  # type: ignore[attr-defined]
    return embed


def update_manifest(root: Path, **sections: Any) -> None:
    """Rewrite the manifest (file list re-hashed), merging the given top-level sections."""
    data: dict[str, Any] = {}
    if (root / MANIFEST).exists():
        try:
            data = dict(read_manifest(root).data)
        except BundleError:
            data = {}
    prov = dict(data.get("provenance", {}))
    prov.update(sections.pop("provenance", {}))
    data.update(sections)
    data["provenance"] = prov
    data["created_by"] = f"xned {__version__}"
    kb_meta = root / "kb" / "meta.json"
    if kb_meta.exists():
        meta = json.loads(kb_meta.read_text(encoding="utf-8"))
        data["languages"] = sorted(meta.get("languages", {}))
        data["kb"] = {
            "entities": meta.get("entities"),
            "aliases": meta.get("languages"),
            "vector_dim": meta.get("vector_dim"),
        }
    write_manifest(root, data)


@contextmanager
def bundle_transaction(bundle: Path) -> Iterator[Path]:
    """Change a bundle as one transaction: yields a staging directory beside it holding a
    hard-linked copy of the bundle (writers must replace files, never edit them in place);
    on success the staging directory is swapped in for the bundle, on any failure it is
    removed and the bundle is as it was. An advisory lock stops a second writer."""
    bundle = Path(bundle).absolute()
    parent = bundle.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock_path = parent / f".{bundle.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise KBBuildError(f"Bundle {bundle} is being built by PID {holder}; wait for that build to finish.") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        old = parent / f".{bundle.name}.old"
        if not bundle.exists() and old.is_dir():  # a swap interrupted between its two renames
            old.rename(bundle)
        shutil.rmtree(old, ignore_errors=True)
        stage = parent / f".{bundle.name}.staging"
        shutil.rmtree(stage, ignore_errors=True)  # left by a build that died
        if bundle.is_dir():
            shutil.copytree(bundle, stage, copy_function=os.link, symlinks=True)
        else:
            stage.mkdir()
        try:
            yield stage
            if bundle.exists():
                bundle.rename(old)
            stage.rename(bundle)
            fsync_dir(parent)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def build_kb_into_bundle(
    sources: Iterable[Path],
    bundle: Path,
    *,
    encoder: Path | None = None,
    langs: set[str] | None = None,
    top_k: int = 30,
    strict: bool = False,
    vectors: bool | str = True,
    threads: int | None = None,
    progress=None,
    reader_args: dict[str, Any] | None = None,
    vector_cache: Path | None = None,
    max_skipped: float = 0.1,
    dense: bool = True,
    shards: dict[str, Any] | None = None,
    entity_filter: Any = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Build the KB of ``bundle`` from ``sources`` (and copy ``encoder`` into it), as one
    transaction: a build that fails, or that skips more than ``max_skipped`` of its input
    records, leaves the bundle as it was. ``vectors``: True or "all" (every entity), "ambiguous"
    (only entities that share a name with another: ``kb_vectors.shared_names``), False or
    "none". ``shards`` (``runner``, ``work``, ``shard_bytes``)
    reads the sources in parallel shards (``kb_shards.build_sharded``): the same KB."""
    sources = [Path(s) for s in sources]
    if vectors not in (True, False, "all", "ambiguous", "none"):
        raise InputError(f"Unknown vectors rule {vectors!r}; choose all, ambiguous or none.")
    if not sources:
        raise InputError("No KB sources given: pass entity TSV/JSONL files or dumps.")
    if encoder is not None:
        encoder = Path(encoder)
        if not (encoder / "config.json").is_file():
            raise InputError(
                f"{encoder} is not a bundle encoder directory (no config.json); "
                f"create one with: xned export encoder ..."
            )
    with bundle_transaction(Path(bundle)) as stage:
        meta, report = _build_staged(
            sources, stage, Path(bundle), encoder, langs, top_k, strict, vectors, threads, progress, reader_args,
            vector_cache, dense, shards, entity_filter,
        )  # fmt: skip
        total = max(sum(int(src.get("records", 0)) for src in report.sources), report.skipped)
        if report.skipped and report.skipped > max_skipped * total:
            first = report.warnings[0] if report.warnings else "?"
            raise KBBuildError(
                f"The build skipped {report.skipped:,} of {total:,} input records ({report.skipped / total:.0%}; "
                f"first: {first}): more than --max-skipped {max_skipped:.0%}, so the bundle was left as it was. "
                f"Fix the input, or raise --max-skipped."
            )
    return meta, report


def _build_staged(
    sources: list[Path],
    bundle: Path,
    target: Path,
    encoder: Path | None,
    langs: set[str] | None,
    top_k: int,
    strict: bool,
    vectors: bool | str,
    threads: int | None,
    progress: Any,
    reader_args: dict[str, Any] | None,
    vector_cache: Path | None,
    dense: bool,
    shards: dict[str, Any] | None = None,
    entity_filter: Any = None,
) -> tuple[dict[str, Any], BuildReport]:
    """The build inside the staging directory ``bundle`` of the bundle ``target``."""
    if encoder is not None and encoder.resolve() != (target / "encoder").resolve():
        dest = bundle / "encoder"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(encoder, dest)
    bundle.mkdir(parents=True, exist_ok=True)
    embed = None
    if vectors not in (False, "none") and (bundle / "encoder" / "config.json").is_file():
        embed = make_embedder(
            bundle / "encoder",
            threads=threads,
            progress=progress,
            cache=vector_cache,
            shared_only=vectors == "ambiguous",
        )
    try:
        build: Any = build_kb
        if shards is not None:
            from xned.export.kb_shards import build_sharded

            build = functools.partial(build_sharded, **shards)
        meta, report = build(
            sources,
            bundle / "kb",
            langs=langs,
            top_k=top_k,
            strict=strict,
            embed=embed,
            reader_args=reader_args,
            bundle=bundle,
            entity_filter=entity_filter,
        )
    finally:
        if embed is not None:
            embed.flush()  # type: ignore[attr-defined]
    dense_info = None
    if dense and embed is not None and meta.get("entities"):
        from xned.export.dense_build import build_dense_index

        dense_info = build_dense_index(bundle / "kb")
    added = bundle / "kb_sources"
    if added.is_dir():  # a full build replaces the KB together with earlier `kb add` overlays
        n = len(list(added.iterdir()))
        shutil.rmtree(added)
        report.warnings.append(f"{n} file(s) added earlier with `xned kb add` were dropped by this full build")
    update_manifest(
        bundle,
        provenance={
            "kb": {
                "sources": report.sources,
                "top_k": top_k,
                "langs": sorted(langs) if langs else "all",
                "vectors": meta.get("vectors", {}).get("rule", "all") if embed is not None else "none",
                **({"vector_stats": {k: round(v, 1) for k, v in embed.stats.items()}} if embed is not None else {}),  # type: ignore[attr-defined]
            },
            "dense_index": dense_info,
        },
    )
    return meta, report


def index_bundle(bundle: Path, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``xned kb index``: add or rebuild the dense index of a bundle, as one transaction;
    ``log`` gets progress lines."""
    from xned.export.dense_build import build_dense_index

    bundle = Path(bundle)
    if not (bundle / "kb" / "meta.json").is_file():
        raise InputError(f"{bundle} has no KB (no kb/meta.json); build one with: xned kb build ... --bundle {bundle}")
    with bundle_transaction(bundle) as stage:
        info = build_dense_index(stage / "kb", log=log or (lambda _line: None))
        update_manifest(stage, provenance={"dense_index": info})
    return info
