"""``xned kb add`` and ``xned kb compact``: incremental KB updates without a full rebuild.

Layout inside a bundle::

    kb/                 the base KB; kb/build.json records its sources and options
    kb/overlay/         KB built from the added files only (same format), merged at lookup
    kb_sources/         every file given to ``xned kb add``, copied as NNNN-<name>

``add`` validates the new files (a failed read changes nothing), copies them into
``kb_sources/``, and rebuilds ``kb/overlay`` from all added files that are not yet part of the
base: seconds for a few hundred entities, whatever the size of the base. At lookup an overlay
entity supersedes a base entity with the same QID and alias candidates are merged (see
``xned.engine.kb.KB.lookup``).

``compact`` rebuilds the base from its recorded sources followed by the added files, with
the recorded options, so the result is byte-identical to one ``xned kb build`` over the same
files, and removes the overlay. Sources outside the bundle must still exist unchanged (size
and modification time are checked); ``--source OLD=NEW`` points at moved files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from xned.engine import layout as L
from xned.engine.bundle import read_json_object
from xned.errors import InputError, KBBuildError
from xned.export.kb.build import BUNDLE_PREFIX, SOURCES_DIR, build_kb
from xned.export.kb.builder import KBBuilder
from xned.export.kb.dense import build_dense_index
from xned.export.kb.embed import EntityEmbedder
from xned.export.kb.names import build_name_index
from xned.export.kb.options import KBOptions
from xned.export.kb.sources import read_source
from xned.export.manifest import update_manifest
from xned.export.transaction import bundle_transaction
from xned.fsutil import sha256_file


def resolve_source(rec: dict[str, Any], bundle: Path, moved: dict[str, Path] | None = None) -> Path:
    ref = str(rec["path"])
    path = Path(bundle) / ref[len(BUNDLE_PREFIX) :] if ref.startswith(BUNDLE_PREFIX) else Path(ref)
    if moved and (ref in moved or path.name in moved):
        return moved.get(ref) or moved[path.name]
    if not path.is_file():
        raise KBBuildError(
            f"KB source {path} (recorded at build time) is missing; restore it or pass --source {path.name}=NEW_PATH."
        )
    st = path.stat()
    if "sha256" in rec:  # portable record (the default bundle): content, not modification time
        what = "size or content"
        changed = st.st_size != rec.get("size") or sha256_file(path) != rec["sha256"]
    else:
        what = "size or modification time"
        changed = st.st_size != rec.get("size") or st.st_mtime_ns != rec.get("mtime_ns")
    if changed:
        raise KBBuildError(
            f"KB source {path} changed since the KB was built ({what} differ); "
            f"restore the original or pass --source {path.name}=NEW_PATH to use another file knowingly."
        )
    return path


def read_build(bundle: Path) -> dict[str, Any]:
    kb = Path(bundle) / L.KB
    if not (kb / L.KBDir.META).is_file():
        raise InputError(f"{bundle} has no kb/meta.json; build a KB first with: xned kb build ... --bundle {bundle}")
    hint = "rebuild the KB with xned kb build"
    return read_json_object(kb / L.KBDir.BUILD, "The KB's record of its sources", error=KBBuildError, hint=hint)


def _overlay_sources(bundle: Path, build: dict[str, Any]) -> list[Path]:
    base = {str(r["path"]) for r in build.get("sources", [])}
    d = Path(bundle) / SOURCES_DIR
    if not d.is_dir():
        return []
    return [p for p in sorted(d.iterdir()) if p.is_file() and BUNDLE_PREFIX + f"{SOURCES_DIR}/{p.name}" not in base]


def _embedder(bundle: Path, vectors: bool | str, threads: int | None) -> EntityEmbedder | None:
    """The embedder of the recorded rule (True/"all", "ambiguous", False/"none")."""
    if vectors in (False, "none") or not (Path(bundle) / L.ENCODER / L.ENCODER_CONFIG).is_file():
        return None
    return EntityEmbedder(Path(bundle) / L.ENCODER, threads=threads, shared_only=vectors == "ambiguous")


def add(bundle: Path, files: list[Path], *, strict: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Add or update entities/aliases from ``files`` as an overlay; returns the overlay meta."""

    bundle = Path(bundle)
    build = read_build(bundle)
    if not files:
        raise InputError("xned kb add: give at least one entity TSV/JSONL or alias-count TSV file.")
    opts = build.get("options", {})
    for f in files:  # validate before touching the bundle
        if not Path(f).is_file():
            raise InputError(f"{f} not found.")
        if not Path(f).name.lower().endswith((".tsv", ".jsonl")):
            raise InputError(f"{f}: kb add takes entity .tsv/.jsonl files or .counts.tsv files, not dumps.")
        check = KBBuilder(KBOptions.from_recipe(opts, strict=True))
        read_source(Path(f), check)
    with bundle_transaction(bundle) as stage:  # a failure or kill leaves the bundle as it was
        d = stage / SOURCES_DIR
        d.mkdir(exist_ok=True)
        n = len([p for p in d.iterdir() if p.is_file()])
        for i, f in enumerate(files):
            shutil.copyfile(f, d / f"{n + i + 1:04d}-{Path(f).name}")
        meta = rebuild_overlay(stage, read_build(stage), strict=strict, threads=threads)
        update_manifest(stage)
    return meta


def rebuild_overlay(
    bundle: Path, build: dict[str, Any], *, strict: bool = False, threads: int | None = None
) -> dict[str, Any]:
    opts = build.get("options", {})
    sources = _overlay_sources(bundle, build)
    dest = bundle / L.KB / L.KBDir.OVERLAY
    if not sources:
        shutil.rmtree(dest, ignore_errors=True)
        return {}
    # the added files are entity and alias-count files: no reader arguments, no item filter
    options = KBOptions.from_recipe(opts, strict=strict, reader_args={}, entity_filter=None)
    meta, _ = build_kb(
        sources, dest, options, embed=_embedder(bundle, bool(opts.get("vectors", True)), threads), bundle=bundle
    )
    return meta


def compact(bundle: Path, *, moved: dict[str, Path] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Rebuild the base KB from its recorded sources plus the added files; drop the overlay."""

    bundle = Path(bundle)
    read_build(bundle)  # a clear error before taking the lock
    with bundle_transaction(bundle) as stage:  # a failure or kill leaves the bundle as it was
        return _compact(stage, moved, threads)


def _compact(bundle: Path, moved: dict[str, Path] | None, threads: int | None) -> dict[str, Any]:

    build = read_build(bundle)
    opts = build.get("options", {})
    sources = [resolve_source(r, bundle, moved) for r in build.get("sources", [])]
    sources += _overlay_sources(bundle, build)
    had_dense = (bundle / L.KB / L.KBDir.DENSE_INDEX).is_file()
    had_names = (bundle / L.KB / L.KBDir.NAMES_INDEX).is_file()
    embed = _embedder(bundle, opts.get("vectors", True), threads)
    meta, _ = build_kb(sources, bundle / L.KB, KBOptions.from_recipe(opts), embed=embed, bundle=bundle)
    if had_dense and meta.get("vector_dim"):  # the folded-in entities join the index
        build_dense_index(bundle / L.KB)
    if had_names and meta.get("vector_dim"):  # and their labels
        build_name_index(bundle / L.KB, bundle / L.ENCODER, threads=threads)
    update_manifest(bundle)
    return meta
