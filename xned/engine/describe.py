"""A bundle's summary as ``xned kb info`` prints it."""

from __future__ import annotations

from typing import Any


def _corrections(c: Any) -> dict[str, Any] | None:
    if c is None or c.store is None:
        return None
    return {"file": str(c.store.path), "examples": len(c), "keys": len(c.by_key), "error": c.error}


def describe(linker: Any) -> dict[str, Any]:
    """``linker``: a ``Linker`` (not imported here: the linker imports this module)."""
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
        else {k: v for k, v in linker.encoder.config.items() if k not in ("model", "tokenizer")},
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
