"""Build a bundle KB from its sources (``xned kb build SOURCE...``): each source is read
into a ``KBBuilder`` (``kb.builder``) by its reader (``kb.sources``), in order, then
the builder writes the KB. ``kb.shards`` does the same over shards read in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.export.kb.builder import BuildReport, KBBuilder
from xned.export.kb.filter import EntityFilter
from xned.export.kb.sources import is_wikipedia, read_source
from xned.export.kb.writer import EntityRow
from xned.export.spill import RUN_RECORDS
from xned.export.transaction import scratch_dir


def build_kb(
    sources: Iterable[Path],
    dest: Path,
    *,
    langs: set[str] | None = None,
    top_k: int = 30,
    strict: bool = False,
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    reader_args: dict[str, Any] | None = None,
    bundle: Path | None = None,
    run_records: int = RUN_RECORDS,
    entity_filter: EntityFilter | None = None,
    stem_langs: dict[str, str] | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Read every source and write the KB directory ``dest`` (e.g. ``bundle/kb``); with
    ``entity_filter``, only the Wikidata items it keeps (``kb.filter``); with ``stem_langs``
    (language -> Snowball algorithm), stem keys for those languages instead of
    ``STEM_LANGS`` (``kb.stems``), recorded with the options.

    ``meta.json`` records the sources (path, size, mtime) and options under ``build`` so
    ``xned kb compact`` can repeat the build; paths inside ``bundle`` are stored relative."""
    sources = [Path(s) for s in sources]
    with scratch_dir(dest) as tmp:  # spilled runs beside the output: a killed build's go with the next
        b = KBBuilder(
            langs=langs, top_k=top_k, strict=strict, run_records=run_records, entity_filter=entity_filter, tmp_dir=tmp
        )
        try:
            for i, src in enumerate(sources):
                b.begin_source(i)
                # a Wikidata dump's sitelinks only serve Wikipedia dumps read after it
                later = any(is_wikipedia(s) for s in sources[i + 1 :])
                n = read_source(src, b, **{**(reader_args or {}), "sitelinks": later})
                b.report.sources.append({"path": src.name, "records": n})
        except BaseException:
            b.close()  # the spilled runs go with the failed build (writing closes it otherwise)
            raise
        return finish_build(
            b, sources, dest, langs, top_k, strict, embed, reader_args, bundle, entity_filter, stem_langs
        )


def finish_build(
    b: KBBuilder,
    sources: list[Path],
    dest: Path,
    langs: set[str] | None,
    top_k: int,
    strict: bool,
    embed: Callable[[list[EntityRow]], np.ndarray] | None,
    reader_args: dict[str, Any] | None,
    bundle: Path | None,
    entity_filter: EntityFilter | None = None,
    stem_langs: dict[str, str] | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Write the KB of a builder that has read every source (``build_kb``, ``kb.shards``)."""
    root = Path(bundle) if bundle is not None else Path(dest).parent
    b.workers = max(1, int((reader_args or {}).get("workers", 1) or 1))
    options = {
        "langs": sorted(langs) if langs else None,
        "top_k": top_k,
        "strict": strict,
        "vectors": "ambiguous" if getattr(embed, "shared_only", False) else embed is not None,
        **({"filter": asdict(entity_filter)} if entity_filter is not None and entity_filter.active else {}),
        **({"stem_langs": dict(sorted(stem_langs.items()))} if stem_langs is not None else {}),
        # worker count does not change the output, so it is not part of the recipe
        "reader_args": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in (reader_args or {}).items()
            if k not in ("workers", "byte_range")
        },
    }
    meta = b.write(
        dest,
        {
            "sources": b.report.sources,
            "top_k": top_k,
            "langs": sorted(langs) if langs else None,
            "build": {"sources": [source_record(s, root) for s in sources], "options": options},
        },
        embed,
    )
    return meta, b.report


SOURCES_DIR = L.KBDir.SOURCES


BUNDLE_PREFIX = "@bundle/"


def source_record(path: Path, bundle: Path) -> dict[str, Any]:
    path = Path(path).resolve()
    st = path.stat()
    try:
        ref = BUNDLE_PREFIX + path.relative_to(Path(bundle).resolve()).as_posix()
    except ValueError:
        ref = str(path)
    return {"path": ref, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
