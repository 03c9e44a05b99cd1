"""Promote an unknown entity into the bundle (``xned nil promote``, ``POST /nil/promote``):
the NIL cluster becomes an entity of the bundle's overlay (as ``xned kb add`` adds one) with
a local QID (``xned.engine.nil.local_qid``), its mentions' names its aliases, so that later
documents link to it like to any other entity."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xned.engine.nil import NilStore, local_qid
from xned.errors import InputError
from xned.export.kb.incremental import add
from xned.fsutil import atomic_write_text


def promote(
    root: Path,
    store: NilStore,
    nil_id: str,
    label: str,
    *,
    description: str = "",
    type_name: str = "",
    threads: int | None = None,
) -> dict[str, Any]:
    """Add cluster ``nil_id`` (or the cluster it was merged into) to bundle ``root`` as an
    entity named ``label``; returns its cluster id, QID and names. Raises ``InputError`` for
    an unknown cluster, an empty label, or a bundle this process may not write."""
    label = label.strip()
    if not label:
        raise InputError("Give the entity a name (--label).")
    cid = store.resolve(nil_id)
    if cid is None:
        raise InputError(f"No NIL cluster {nil_id}; xned nil list shows them.")
    qid = local_qid(cid)
    names = store.names_of(cid)
    record = {
        "qid": qid,
        "type": type_name,
        "label": label,
        "description": description,
        "labels": {"mul": label},
        "aliases": {"mul": [n for n in names if n != label]},
    }
    src = Path(tempfile.mkdtemp(prefix="xned-promote-")) / f"promoted-{qid}.jsonl"
    atomic_write_text(src, json.dumps(record, ensure_ascii=False) + "\n")
    try:
        add(root, [src], threads=threads)
    except PermissionError:
        raise InputError(
            f"Bundle {root} is read-only here; promote into a copy of it you can write "
            f"(xned bundle pack/unpack, or --bundle DIR)."
        ) from None
    finally:
        shutil.rmtree(src.parent, ignore_errors=True)
    store.promoted(cid, qid)
    return {"nil_id": cid, "qid": qid, "label": label, "names": names}


__all__ = ["promote"]
