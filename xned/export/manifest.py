"""The one writer of a bundle's manifest sections for the training-time tools (the manifest's
format and hashing live in ``xned.engine.bundle``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xned import __version__
from xned.engine import layout as L
from xned.engine.bundle import MANIFEST, read_manifest, write_manifest
from xned.errors import BundleError


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
    kb_meta = root / L.KB / L.KBDir.META
    if kb_meta.exists():
        meta = json.loads(kb_meta.read_text(encoding="utf-8"))
        data["languages"] = sorted(meta.get("languages", {}))
        data["kb"] = {
            "entities": meta.get("entities"),
            "aliases": meta.get("languages"),
            "vector_dim": meta.get("vector_dim"),
        }
    write_manifest(root, data)
