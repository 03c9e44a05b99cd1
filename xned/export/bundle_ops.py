"""Bundle-level build steps shared by the CLI: a KB build into a bundle as one transaction, the
dense index of a bundle."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from xned.engine import layout as L
from xned.errors import InputError, KBBuildError
from xned.export.kb.build import build_kb
from xned.export.kb.builder import BuildReport
from xned.export.kb.embed import EntityEmbedder
from xned.export.manifest import update_manifest
from xned.export.transaction import bundle_transaction


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
    names: bool = False,
) -> tuple[dict[str, Any], BuildReport]:
    """Build the KB of ``bundle`` from ``sources`` (and copy ``encoder`` into it), as one
    transaction: a build that fails, or that skips more than ``max_skipped`` of its input
    records, leaves the bundle as it was. ``vectors``: True or "all" (every entity), "ambiguous"
    (only entities that share a name with another: ``kb.vectors.shared_names``), False or
    "none". ``shards`` (``runner``, ``work``, ``shard_bytes``)
    reads the sources in parallel shards (``kb.shards.build_sharded``): the same KB. With
    vectors, ``dense`` builds the dense index and ``names`` the name index too."""
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
            vector_cache, dense, shards, entity_filter, names,
        )  # fmt: skip
        # the sources count the records they kept; the share is of every record read
        total = sum(int(src.get("records", 0)) for src in report.sources) + report.skipped
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
    names: bool = False,
) -> tuple[dict[str, Any], BuildReport]:
    """The build inside the staging directory ``bundle`` of the bundle ``target``."""
    if encoder is not None and encoder.resolve() != (target / "encoder").resolve():
        dest = bundle / "encoder"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(encoder, dest)
    bundle.mkdir(parents=True, exist_ok=True)
    embed: EntityEmbedder | None = None
    if vectors not in (False, "none") and (bundle / "encoder" / "config.json").is_file():
        embed = EntityEmbedder(
            bundle / "encoder",
            threads=threads,
            progress=progress,
            cache=vector_cache,
            shared_only=vectors == "ambiguous",
        )
    try:
        build: Any = build_kb
        if shards is not None:
            from xned.export.kb.shards import build_sharded

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
            embed.flush()
    dense_info = names_info = None
    if dense and embed is not None and meta.get("vector_dim"):  # none: no entity shares a name
        from xned.export.kb.dense import build_dense_index
        from xned.export.kb.names import build_name_index

        dense_info = build_dense_index(bundle / "kb")
        if names:
            names_info = build_name_index(bundle / "kb", bundle / "encoder", threads=threads, cache=vector_cache)
    added = bundle / L.KBDir.SOURCES
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
                **({"vector_stats": {k: round(v, 1) for k, v in embed.stats.items()}} if embed is not None else {}),
            },
            "dense_index": dense_info,
            "name_index": names_info,
        },
    )
    return meta, report


def index_bundle(
    bundle: Path,
    *,
    dense: bool = True,
    names: bool = False,
    stems: dict[str, str] | None = None,
    threads: int | None = None,
    vector_cache: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``xned kb index``: add or rebuild the dense index and/or the name index of a bundle
    (the name index needs the bundle's encoder) and/or the stem keys of the languages
    ``stems`` (language -> Snowball algorithm; the others lose theirs), as one transaction;
    ``log`` gets progress lines. Returns what was built, by index."""
    from xned.export.kb.dense import build_dense_index
    from xned.export.kb.names import build_name_index

    bundle = Path(bundle)
    if not (bundle / L.KB / L.KBDir.META).is_file():
        raise InputError(f"{bundle} has no KB (no kb/meta.json); build one with: xned kb build ... --bundle {bundle}")
    if names and not (bundle / L.ENCODER / L.ENCODER_CONFIG).is_file():
        raise InputError(f"{bundle} has no encoder; the name index needs one (xned kb build ... --encoder DIR).")
    info: dict[str, Any] = {}
    with bundle_transaction(bundle) as stage:
        say = log or (lambda _line: None)
        if dense:
            info["dense_index"] = build_dense_index(stage / "kb", log=say)
        if names:
            info["name_index"] = build_name_index(
                stage / "kb", stage / L.ENCODER, threads=threads, cache=vector_cache, log=say
            )
        if stems is not None:
            from xned.export.kb.stems import record_stem_langs, write_all_stems

            t0 = time.perf_counter()
            counts = write_all_stems(stage / L.KB / L.KBDir.ALIASES, stems)
            if (overlay := stage / L.KB / L.KBDir.OVERLAY / L.KBDir.ALIASES).is_dir():
                write_all_stems(overlay, stems)
            record_stem_langs(stage / L.KB / L.KBDir.BUILD, stems)  # kb add and kb compact keep them
            info["stem_keys"] = {"languages": counts, "seconds": round(time.perf_counter() - t0, 1)}
        update_manifest(stage, provenance=info)
    return info
