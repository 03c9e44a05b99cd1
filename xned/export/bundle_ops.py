"""Bundle-level build steps shared by the CLI: a KB build into a bundle as one transaction, the
dense index of a bundle."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xned.engine import layout as L
from xned.errors import InputError, KBBuildError
from xned.export.kb.build import build_kb
from xned.export.kb.builder import BuildReport
from xned.export.kb.dense import build_dense_index
from xned.export.kb.embed import EntityEmbedder
from xned.export.kb.names import build_name_index
from xned.export.kb.options import KBOptions
from xned.export.kb.shards import ShardPlan, build_sharded
from xned.export.kb.stems import record_stem_langs, write_all_stems
from xned.export.manifest import update_manifest
from xned.export.transaction import bundle_transaction


@dataclass(frozen=True)
class BundleBuild:
    """A ``xned kb build`` into a bundle: the KB's own options (``kb``), the encoder to copy
    in and embed entities with, which entities get vectors at build (``all``, ``ambiguous``:
    only those sharing a name with another, see ``kb.vectors.shared_names``; ``none``), the
    threads and cache of the embedding, the share of skipped input records that fails the
    build, the retrieval indexes to build, and how the sources are read in shards (None: by
    this process)."""

    kb: KBOptions = field(default_factory=KBOptions)
    encoder: Path | None = None
    vectors: str = "all"
    threads: int | None = None
    vector_cache: Path | None = None
    max_skipped: float = 0.1
    dense: bool = True
    names: bool = False
    shards: ShardPlan | None = None

    def __post_init__(self) -> None:
        rule = {True: "all", False: "none"}.get(self.vectors, self.vectors)  # type: ignore[call-overload]
        if rule not in ("all", "ambiguous", "none"):
            raise InputError(f"Unknown vectors rule {self.vectors!r}; choose all, ambiguous or none.")
        object.__setattr__(self, "vectors", rule)


def build_kb_into_bundle(
    sources: Iterable[Path],
    bundle: Path,
    options: BundleBuild | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Build the KB of ``bundle`` from ``sources`` as ``options`` say (and copy its encoder
    in), as one transaction: a build that fails, or that skips more than
    ``options.max_skipped`` of its input records, leaves the bundle as it was. ``progress``
    gets (entities embedded, entities to embed)."""
    options = options or BundleBuild()
    sources = [Path(s) for s in sources]
    if not sources:
        raise InputError("No KB sources given: pass entity TSV/JSONL files or dumps.")
    encoder = options.encoder
    if encoder is not None and not (Path(encoder) / L.ENCODER_CONFIG).is_file():
        raise InputError(
            f"{encoder} is not a bundle encoder directory (no config.json); create one with: xned export encoder ..."
        )
    with bundle_transaction(Path(bundle)) as stage:
        meta, report = _build_staged(sources, stage, Path(bundle), options, progress)
        # the sources count the records they kept; the share is of every record read
        total = sum(int(src.get("records", 0)) for src in report.sources) + report.skipped
        if report.skipped and report.skipped > options.max_skipped * total:
            first = report.warnings[0] if report.warnings else "?"
            raise KBBuildError(
                f"The build skipped {report.skipped:,} of {total:,} input records ({report.skipped / total:.0%}; "
                f"first: {first}): more than --max-skipped {options.max_skipped:.0%}, so the bundle was left as it "
                f"was. Fix the input, or raise --max-skipped."
            )
    return meta, report


def _build_staged(
    sources: list[Path], bundle: Path, target: Path, options: BundleBuild, progress: Callable[[int, int], None] | None
) -> tuple[dict[str, Any], BuildReport]:
    """The build inside the staging directory ``bundle`` of the bundle ``target``."""
    encoder = options.encoder
    if encoder is not None and Path(encoder).resolve() != (target / L.ENCODER).resolve():
        dest = bundle / L.ENCODER
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(encoder, dest)
    bundle.mkdir(parents=True, exist_ok=True)
    embed: EntityEmbedder | None = None
    if options.vectors != "none" and (bundle / L.ENCODER / L.ENCODER_CONFIG).is_file():
        embed = EntityEmbedder(
            bundle / L.ENCODER,
            threads=options.threads,
            progress=progress,
            cache=options.vector_cache,
            shared_only=options.vectors == "ambiguous",
        )
    try:
        if options.shards is not None:
            meta, report = build_sharded(sources, bundle / L.KB, options.shards, options.kb, embed=embed, bundle=bundle)
        else:
            meta, report = build_kb(sources, bundle / L.KB, options.kb, embed=embed, bundle=bundle)
    finally:
        if embed is not None:
            embed.flush()
    dense_info = names_info = None
    if options.dense and embed is not None and meta.get("vector_dim"):  # none: no entity shares a name
        dense_info = build_dense_index(bundle / L.KB)
        if options.names:
            names_info = build_name_index(
                bundle / L.KB, bundle / L.ENCODER, threads=options.threads, cache=options.vector_cache
            )
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
                "top_k": options.kb.top_k,
                "langs": sorted(options.kb.langs) if options.kb.langs else "all",
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

    bundle = Path(bundle)
    if not (bundle / L.KB / L.KBDir.META).is_file():
        raise InputError(f"{bundle} has no KB (no kb/meta.json); build one with: xned kb build ... --bundle {bundle}")
    if names and not (bundle / L.ENCODER / L.ENCODER_CONFIG).is_file():
        raise InputError(f"{bundle} has no encoder; the name index needs one (xned kb build ... --encoder DIR).")
    info: dict[str, Any] = {}
    with bundle_transaction(bundle) as stage:
        say = log or (lambda _line: None)
        if dense:
            info["dense_index"] = build_dense_index(stage / L.KB, log=say)
        if names:
            info["name_index"] = build_name_index(
                stage / L.KB, stage / L.ENCODER, threads=threads, cache=vector_cache, log=say
            )
        if stems is not None:
            t0 = time.perf_counter()
            counts = write_all_stems(stage / L.KB / L.KBDir.ALIASES, stems)
            if (overlay := stage / L.KB / L.KBDir.OVERLAY / L.KBDir.ALIASES).is_dir():
                write_all_stems(overlay, stems)
            record_stem_langs(stage / L.KB / L.KBDir.BUILD, stems)  # kb add and kb compact keep them
            info["stem_keys"] = {"languages": counts, "seconds": round(time.perf_counter() - t0, 1)}
        update_manifest(stage, provenance=info)
    return info
