"""``xned kb``: build, extend and inspect a bundle's knowledge base."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from xned.cli.options import BUNDLE_OPT, THREADS_OPT, log_line, ray_integration
from xned.engine import layout as L
from xned.errors import InputError, KBBuildError

if TYPE_CHECKING:
    from xned.export.kb.shards import ShardPlan

kb_app = typer.Typer(help="Build, extend and inspect knowledge bases.", no_args_is_help=True)


def _langs(value: str | None) -> set[str] | None:
    if not value:
        return None
    from xned.export.kb.builder import lang_key

    out = set()
    for code in value.split(","):
        key = lang_key(code)
        if key is None:
            from xned.errors import InputError

            raise InputError(f"Invalid language code {code!r} in --langs; use ISO 639-1 codes like en,es,ja.")
        out.add(key)
    return out


@kb_app.command("build")
def build_cli(
    sources: list[Path] = typer.Argument(
        ...,
        help="Entity TSV/JSONL files, alias-count TSVs (*.counts.tsv), Wikidata JSON dumps, Wikipedia XML dumps.",
    ),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle directory to write kb/ into (created if missing)."),
    encoder: Path | None = typer.Option(
        None, "--encoder", help="Encoder directory to copy into the bundle and embed entities with."
    ),
    langs: str | None = typer.Option(
        None, "--langs", help="Comma-separated languages to keep alias tables for (default: all)."
    ),
    top_k: int = typer.Option(30, "--top-k", min=1, help="Candidates kept per alias."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on the first malformed line instead of skipping and counting."
    ),
    max_skipped: float = typer.Option(
        0.1,
        "--max-skipped",
        min=0.0,
        max=1.0,
        help="Fail (bundle unchanged) if more than this share of records is skipped.",
    ),
    no_vectors: bool = typer.Option(False, "--no-vectors", help="Do not compute entity embeddings."),
    vectors: str | None = typer.Option(
        None,
        "--vectors",
        help="Which entities to embed at build: all, or ambiguous (only those sharing a name with another entity; "
        "the others are embedded at run time when a mention needs them). "
        "Default: all; ambiguous with --profile laptop.",
    ),
    no_dense: bool = typer.Option(
        False, "--no-dense", help="Do not build the dense retrieval index (candidates without an alias)."
    ),
    names: bool = typer.Option(
        False,
        "--names",
        help="Also build the name index: candidates by name in any script (more recall and accuracy, "
        "costs NIL precision in some languages: see the README).",
    ),
    threads: int | None = THREADS_OPT,
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Processes reading Wikidata dumps (byte ranges of an uncompressed one, the lines of a compressed one) "
        "and writing the alias tables.",
    ),
    titles: Path | None = typer.Option(
        None, "--titles", help="title<TAB>qid TSV mapping Wikipedia link targets to QIDs."
    ),
    wiki_lang: str | None = typer.Option(None, "--wiki-lang", help="Language of a Wikipedia dump without <dbname>."),
    link_prob: bool = typer.Option(
        False, "--link-prob", help="Second pass over Wikipedia dumps: P(link | string) per anchor, for detection."
    ),
    vector_cache: Path | None = typer.Option(
        None, "--vector-cache", help="Directory caching entity embeddings across rebuilds (keyed by encoder + text)."
    ),
    engine: str = typer.Option(
        "local", "--engine", help="local, or ray: read sources and dump byte ranges as Ray tasks (the same KB)."
    ),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: start a local one)."),
    shard_mb: float = typer.Option(
        256.0,
        "--shard-mb",
        min=1e-6,
        help="MB of an uncompressed Wikidata dump per shard (a Ray task; what --resume keeps).",
    ),
    work: Path | None = typer.Option(
        None,
        "--work",
        help="Shard files directory (default: beside the bundle; for --engine ray on a cluster: storage every node "
        "shares).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue a build that was killed: its finished shards are kept, the others read again (same inputs).",
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="Which Wikidata items to keep: laptop (people, places, organisations ...) or full."
    ),
    keep_class: list[str] | None = typer.Option(
        None, "--keep-class", help="Keep Wikidata items of this class or its subclasses (repeatable, e.g. Q5)."
    ),
    min_sitelinks: int | None = typer.Option(
        None, "--min-sitelinks", min=0, help="Keep items with this many sitelinks."
    ),
    max_entities: int | None = typer.Option(
        None, "--max-entities", min=1, help="Keep at most this many Wikidata items, those with most sitelinks."
    ),
) -> None:
    """Build the KB (entity store + per-language alias tables with priors) into a bundle."""
    from rich.console import Console

    from xned.export.bundle_ops import build_kb_into_bundle

    console = Console(stderr=True)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if console.is_terminal:
            console.print(f"embedding entities {done:,}/{total:,}", end="\r")

    from concurrent.futures.process import BrokenProcessPool

    from xned.export.bundle_ops import BundleBuild
    from xned.export.kb.filter import EntityFilter, profile_vectors
    from xned.export.kb.options import KBOptions

    kb_options = KBOptions(
        langs=_langs(langs),
        top_k=top_k,
        strict=strict,
        reader_args={"workers": workers, "titles_tsv": titles, "lang": wiki_lang, "link_prob": link_prob},
        entity_filter=EntityFilter.make(profile, keep_class, min_sitelinks, max_entities),
    )
    options = BundleBuild(
        kb_options,
        encoder=encoder,
        vectors="none" if no_vectors else vectors or profile_vectors(profile),
        threads=threads,
        vector_cache=vector_cache,
        max_skipped=max_skipped,
        dense=not no_dense,
        names=names,
        shards=_shard_plan(engine, address, work, shard_mb, sources, workers, bundle, resume),
    )
    try:
        meta, report = build_kb_into_bundle(sources, bundle, options, progress=progress)
    except BrokenProcessPool:
        raise KBBuildError(
            f"A worker process of the build died (killed, or out of memory) with --workers {workers}; the KB "
            "was not written. Run again with fewer --workers, or on a machine with more memory."
        ) from None
    dt = time.perf_counter() - t0
    n_alias = sum(meta["languages"].values())
    typer.echo(
        f"Built {bundle / 'kb'}: {meta['entities']:,} entities, {n_alias:,} alias keys in "
        f"{len(meta['languages'])} languages, vectors: {meta['vector_dim'] or 'none'} ({dt:.1f}s)",
        err=True,
    )
    for kind, n in sorted(report.counts.items()):
        typer.echo(f"  skipped/warned {kind}: {n:,}", err=True)
        for w in report.examples.get(kind, []):
            typer.echo(f"    e.g. {w}", err=True)
    listed = {w for ws in report.examples.values() for w in ws}
    for w in report.warnings:
        if w not in listed:
            typer.echo(f"  warning: {w}", err=True)


def _shard_plan(
    engine: str,
    address: str | None,
    work: Path | None,
    shard_mb: float,
    sources: list[Path],
    workers: int,
    bundle: Path,
    resume: bool,
) -> ShardPlan | None:
    """How ``kb build`` reads its sources: as Ray tasks, in local worker processes, or here;
    in shards whose finished ones a killed build keeps in ``work`` (default: beside the
    bundle) for ``--resume``. A compressed dump read with ``--workers`` (one reader, its
    decoding shared by the workers) has no shards to keep."""
    from dataclasses import replace

    from xned.export.kb.shards import PLAN, ShardPlan, local_runner, local_shards

    own = work is None
    home = bundle.absolute()
    work = work or home.parent / f".{home.name}.kb-build"
    if not resume and (work / PLAN).is_file():
        raise InputError(
            f"An interrupted kb build left its finished shards in {work}: run the same command with --resume "
            f"to continue it, or remove that folder to start over."
        )
    shard_bytes = max(1, int(shard_mb * 1024 * 1024))
    if engine == "ray":
        return ShardPlan(ray_integration().kb_runner(address), work, shard_bytes, resume, log_line, own)
    if engine != "local":
        raise InputError(f"Unknown --engine {engine!r}; choose local or ray.")
    if workers > 1:
        found = local_shards(sources, workers)
        return None if found is None else replace(found, work=work, resume=resume, log=log_line, own_work=own)
    return ShardPlan(local_runner(1), work, shard_bytes, resume, log_line, own)


@kb_app.command("index")
def index_cli(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle whose KB gets the retrieval indexes."),
    dense: bool = typer.Option(True, "--dense/--no-dense", help="The dense index of entity vectors."),
    names: bool = typer.Option(
        False, "--names/--no-names", help="The name index of entity labels (needs the encoder; see the README)."
    ),
    stems: bool = typer.Option(
        False, "--stems", help="Snowball stem keys of the alias tables (inflected names; see the README)."
    ),
    stem_langs: str | None = typer.Option(
        None, "--stem-langs", help="With --stems: comma-separated languages (default: those kb build stems), or 'none'."
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Encoder threads for the labels."),
) -> None:
    """Build (or rebuild) kb/dense.usearch and kb/names.usearch: candidates for mentions by
    vector in context and by name in any script, with no alias needed; with --stems, the
    tables' stem keys."""
    from xned.export.bundle_ops import index_bundle
    from xned.export.kb.stems import parse_stem_langs

    if stem_langs is not None and not stems:
        raise InputError("--stem-langs goes with --stems; add --stems.")
    if not dense and not names and not stems:
        raise InputError("--no-dense without --names or --stems leaves nothing to build; add one or drop --no-dense.")
    chosen = parse_stem_langs(stem_langs) if stems else None
    info = index_bundle(bundle, dense=dense, names=names, stems=chosen, threads=threads)
    if "stem_keys" in info:
        langs = info["stem_keys"]["languages"]
        typer.echo(
            f"Stem keys of {len(langs)} tables ({', '.join(f'{k} {v:,}' for k, v in langs.items()) or 'none'}) "
            f"in {info['stem_keys']['seconds']} s",
            err=True,
        )
    for name, what, file in (
        ("dense_index", "entity vectors", "dense.usearch"),
        ("name_index", "entity labels", "names.usearch"),
    ):
        if name in info:
            i = info[name]
            n = i.get("labels", i.get("entities", 0))
            typer.echo(
                f"Indexed {n:,} {what} into {bundle / 'kb' / file} ({i['bytes'] / 1e6:.1f} MB, {i['seconds']} s)",
                err=True,
            )


@kb_app.command("info")
def info_cli(bundle: Path | None = BUNDLE_OPT) -> None:
    """Counts per language and sizes of the bundle's KB."""
    from xned.engine.kb import KB
    from xned.engine.linker import Linker

    linker = Linker.load(bundle, variant="prior", use_corrections=False)  # lookups need no encoder or scoring
    kb: KB = linker.kb
    root = linker.root / L.KB
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    typer.echo(f"entities  {len(kb):,}" + ("  (with overlay)" if kb.overlay else ""))
    stored = kb.base.entities.vectors
    some = (
        ""
        if stored is None or stored.shape[0] == len(kb.base.entities)
        else (f"  ({stored.shape[0]:,} entities stored, the others embedded when a mention needs them)")
    )
    typer.echo(f"vectors   {kb.dim or 'none'}{some}")
    typer.echo(f"size      {size / 1e6:.2f} MB on disk")
    typer.echo("language  keys        candidates  bytes")
    for table, _ in kb.tables_for(None):
        tbytes = sum(p.stat().st_size for p in table.root.iterdir())
        typer.echo(f"{table.lang:<9} {len(table):>10,}  {len(table.cands):>10,}  {tbytes:>12,}")


@kb_app.command("lookup")
def lookup_cli(
    alias: str = typer.Argument(..., help="Alias (surface string) to look up."),
    lang: str | None = typer.Option(None, "--lang", "-l"),
    bundle: Path | None = BUNDLE_OPT,
    top_k: int = typer.Option(30, "--top-k", min=1),
) -> None:
    """Candidates of an alias with their priors (debugging)."""
    from xned.engine.linker import Linker
    from xned.engine.normalize import normalize

    linker = Linker.load(bundle, variant="prior", use_corrections=False)  # lookups need no encoder or scoring
    rows = linker.lookup(alias, lang, top_k)
    typer.echo(f"key {normalize(alias)!r}: {len(rows)} candidates")
    for qid, label, prior in rows:
        typer.echo(f"{qid}\t{prior:.4f}\t{label}")


@kb_app.command("add")
def add_cli(
    files: list[Path] = typer.Argument(..., help="Entity TSV/JSONL files or alias-count TSVs (*.counts.tsv)."),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle whose KB gets the additions."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first malformed line."),
    threads: int | None = THREADS_OPT,
) -> None:
    """Add or update entities and aliases as an overlay (no rebuild); fold in later with `kb compact`."""
    from xned.export.kb.incremental import add

    t0 = time.perf_counter()
    meta = add(bundle, files, strict=strict, threads=threads)
    typer.echo(
        f"Overlay {bundle / 'kb' / 'overlay'}: {meta.get('entities', 0):,} entities, "
        f"{sum(meta.get('languages', {}).values()):,} alias keys ({time.perf_counter() - t0:.1f}s)",
        err=True,
    )


@kb_app.command("compact")
def compact_cli(
    bundle: Path = typer.Option(..., "--bundle", "-b"),
    source: list[str] | None = typer.Option(
        None, "--source", help="NAME=PATH: use PATH for a recorded source that moved or changed."
    ),
    threads: int | None = THREADS_OPT,
) -> None:
    """Fold the overlay into the base KB (a rebuild from the recorded sources plus the added files)."""
    from xned.export.kb.incremental import compact

    moved: dict[str, Path] = {}
    for item in source or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--source {item!r}: expected NAME=PATH, e.g. --source entities.tsv=/data/entities.tsv")
        moved[name] = Path(path)
    t0 = time.perf_counter()
    meta = compact(bundle, moved=moved, threads=threads)
    typer.echo(f"Compacted {bundle / 'kb'}: {meta['entities']:,} entities ({time.perf_counter() - t0:.1f}s)", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
