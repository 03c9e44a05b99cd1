"""The reach of an analyst's correction, measured on Wikipedia text with the bundle's encoder.

A correction is taught on one mention in one context (``xned.engine.corrections``). How far
it should carry is a property of the encoder's mention-in-context vectors: two mentions of
the same name in unrelated articles sit at some typical cosine. The reach ramps a
correction's effect from nothing at the median cosine of such cross-article pairs (a context
no closer to the taught one than an unrelated article) to all of it at their 90th percentile
(a context that closely resembles it). Pairs are every two links with the same normalized
anchor text in two different articles, whatever their targets: no label is used, and only
the two numbers go into ``scoring.json`` (``corrections_reach``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine import layout as L
from xned.engine.encoder import Encoder
from xned.engine.normalize import normalize
from xned.engine.scoring import DEFAULT_BIAS, DEFAULT_THRESHOLD, DEFAULT_WEIGHTS
from xned.errors import InputError
from xned.export.manifest import update_manifest
from xned.export.wikimedia import iter_pages, plain_text_with_links
from xned.fsutil import atomic_write_text
from xned.logs import Log, silent

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder

MAX_PAGES = 2000
MIN_PAIRS = 200


def cross_article_cosines(encoder: Encoder, samples: list[Path], max_pages: int = MAX_PAGES) -> np.ndarray:
    """Cosines between mentions of one name (links with the same normalized anchor text) in
    two different articles of the Wikipedia XML ``samples``."""
    docs: list[tuple[str, list[tuple[int, int]]]] = []
    for path in samples:
        for page in iter_pages(Path(path)):
            if page.ns != "0" or page.redirect:
                continue
            text, links = plain_text_with_links(page.text)
            if links:
                docs.append((text, [(s, e) for s, e, _ in links]))
            if len(docs) >= max_pages:
                break
    vecs = encoder.embed_mentions([t for t, _ in docs], [spans for _, spans in docs])
    by_name: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for d, ((text, spans), v) in enumerate(zip(docs, vecs, strict=True)):
        for (s, e), x in zip(spans, v, strict=True):
            by_name[normalize(text[s:e])].append((d, x))
    out: list[np.ndarray] = []
    for items in by_name.values():
        if len(items) < 2:
            continue
        where = np.array([d for d, _ in items])
        xs = np.stack([x for _, x in items])
        other = np.triu(where[:, None] != where[None, :], 1)
        out.append((xs @ xs.T)[other])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def measure_reach(
    bundle: Path, samples: list[Path], *, threads: int | None = None, log: Log = silent
) -> dict[str, Any]:
    """Measure the reach with ``bundle``'s encoder, write it into ``bundle/scoring.json``
    and record it in the manifest."""

    bundle = Path(bundle)
    if not (bundle / L.ENCODER).is_dir():
        raise InputError(f"Bundle {bundle} has no encoder; the reach of corrections is measured with it.")
    cos = cross_article_cosines(Encoder(bundle / L.ENCODER, threads=threads), samples)
    if len(cos) < MIN_PAIRS:
        raise InputError(
            f"Only {len(cos)} pairs of same-name links in different articles in "
            f"{', '.join(str(p) for p in samples)}; give a larger Wikipedia sample (>= {MIN_PAIRS} pairs)."
        )
    lo, hi = (round(float(x), 4) for x in np.percentile(cos, [50, 90]))
    path = bundle / L.SCORING
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    else:  # the defaults the bundle links with, written out
        data = {"weights": dict(DEFAULT_WEIGHTS), "bias": DEFAULT_BIAS, "threshold": DEFAULT_THRESHOLD}
    data["corrections_reach"] = [lo, hi]
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    result = {"pairs": int(len(cos)), "corrections_reach": [lo, hi], "samples": [Path(p).name for p in samples]}
    update_manifest(bundle, provenance={"corrections_reach": result})
    log(f"corrections reach: {json.dumps(result)}")
    return result
