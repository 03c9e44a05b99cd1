"""A bundle's summary as ``xned kb info`` prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from xned.engine.bundle import Manifest
from xned.engine.corrections import Corrections
from xned.engine.encoder import Encoder
from xned.engine.experts import Experts
from xned.engine.kb import KB
from xned.engine.names import Names
from xned.engine.scoring import Scorer
from xned.engine.tagger import Tagger


class Described(Protocol):
    """What of a ``Linker`` its summary reads (the linker imports this module)."""

    root: Path
    manifest: Manifest
    kb: KB
    names: Names
    encoder: Encoder | None
    experts: Experts | None
    scorer: Scorer
    corrections: Corrections | None

    @property
    def tagger(self) -> Tagger | None: ...


def _corrections(c: Corrections | None) -> dict[str, Any] | None:
    if c is None or c.store is None:
        return None
    return {"file": str(c.store.path), "examples": len(c), "keys": len(c.by_key), "error": c.error}


def describe(linker: Described) -> dict[str, Any]:
    """The summary of the bundle a linker has loaded."""
    m = linker.manifest.data
    sizes = sum(int(f.get("size", 0)) for f in linker.manifest.files.values())
    return {
        "bundle": str(linker.root),
        "name": m.get("name"),
        "format_version": m.get("format_version"),
        "created_by": m.get("created_by"),
        "languages": linker.kb.languages,
        "entities": len(linker.kb),
        "aliases": {t.lang: len(t) for t, _ in linker.kb.tables_for(None)},
        "overlay": linker.kb.overlay is not None,
        "dense_index": linker.kb.dense is not None,
        "name_index": linker.names.index is not None,
        "encoder": None
        if linker.encoder is None
        else {
            **{k: v for k, v in linker.encoder.config.items() if k not in ("model", "tokenizer")},
            "providers": linker.encoder.providers_in_use,
        },
        "experts": 0 if linker.experts is None else len(linker.experts),
        "detection": "rules"
        if linker.tagger is None
        else {"model": "trained", **{k: linker.tagger.meta.get(k) for k in ("source_langs", "training_files")}},
        "corrections": _corrections(linker.corrections),
        "scoring": {
            "weights": linker.scorer.weights,
            "bias": linker.scorer.bias,
            "threshold": linker.scorer.threshold,
        },
        "files": len(linker.manifest.files),
        "bytes": sizes,
        "provenance": m.get("provenance", {}),
    }
