"""Build a bundle KB from its sources (``xned kb build SOURCE...``): each source is read
into a ``KBBuilder`` (``kb.builder``) by its reader (``kb.sources``), in order, then
the builder writes the KB. ``kb.shards`` does the same over shards read in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.export.kb.builder import BuildReport, KBBuilder
from xned.export.kb.options import KBOptions
from xned.export.kb.sources import is_wikipedia, read_source
from xned.export.kb.writer import EntityRow
from xned.export.transaction import scratch_dir

Embed = Callable[[list[EntityRow]], np.ndarray]


def build_kb(
    sources: Iterable[Path],
    dest: Path,
    options: KBOptions | None = None,
    *,
    embed: Embed | None = None,
    bundle: Path | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Read every source and write the KB directory ``dest`` (e.g. ``bundle/kb``) as
    ``options`` say (``kb.options``; with an ``entity_filter``, only the Wikidata items it
    keeps, ``kb.filter``), with entity vectors from ``embed``.

    ``meta.json`` records the sources (path, size, mtime) and options under ``build`` so
    ``xned kb compact`` can repeat the build; paths inside ``bundle`` are stored relative."""
    options = options or KBOptions()
    sources = [Path(s) for s in sources]
    with scratch_dir(dest) as tmp:  # spilled runs beside the output: a killed build's go with the next
        b = KBBuilder(options, tmp_dir=tmp)
        try:
            for i, src in enumerate(sources):
                b.begin_source(i)
                # a Wikidata dump's sitelinks only serve Wikipedia dumps read after it
                later = any(is_wikipedia(s) for s in sources[i + 1 :])
                n = read_source(src, b, **options.reading(sitelinks=later))
                b.report.sources.append({"path": src.name, "records": n})
        except BaseException:
            b.close()  # the spilled runs go with the failed build (writing closes it otherwise)
            raise
        return finish_build(b, sources, dest, embed, bundle)


def finish_build(
    b: KBBuilder, sources: list[Path], dest: Path, embed: Embed | None, bundle: Path | None
) -> tuple[dict[str, Any], BuildReport]:
    """Write the KB of a builder that has read every source (``build_kb``, ``kb.shards``)."""
    root = Path(bundle) if bundle is not None else Path(dest).parent
    options = b.options
    vectors = "none" if embed is None else "ambiguous" if getattr(embed, "shared_only", False) else "all"
    meta = b.write(
        dest,
        {
            "sources": b.report.sources,
            "top_k": options.top_k,
            "langs": sorted(options.langs) if options.langs else None,
            "build": {"sources": [source_record(s, root) for s in sources], "options": options.recipe(vectors)},
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
