"""Write the Snowball stem keys of alias tables (read side and rationale:
``xned.engine.stems``): with every KB build for the languages of ``STEM_LANGS``, or for a
chosen set by ``xned kb index --stems``."""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping
from pathlib import Path

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import read_json_object
from xned.engine.stems import ALGORITHMS, STEM_LANGS, stem_key
from xned.errors import InputError
from xned.export.kb.tables import write_key_map
from xned.fsutil import atomic_write_text

STEM_FILES = (L.AliasTable.STEM_CONFIG, L.AliasTable.STEM, L.AliasTable.STEM_OFFSETS, L.AliasTable.STEM_TARGETS)


def parse_stem_langs(text: str | None) -> dict[str, str]:
    """``--stem-langs``: comma-separated language codes (None: ``STEM_LANGS``; "none": no
    language) -> their Snowball algorithms."""
    if text is None:
        return dict(STEM_LANGS)
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if codes == ["none"]:
        return {}
    unknown = [c for c in codes if c not in ALGORITHMS]
    if unknown:
        raise InputError(
            f"No Snowball stemmer for {', '.join(unknown)}; --stem-langs takes codes among "
            f"{', '.join(sorted(ALGORITHMS))}, or 'none'."
        )
    return {c: ALGORITHMS[c] for c in codes}


def write_stems(table: Path, algorithm: str | None) -> int:
    """Stem keys of the alias table at ``table`` (a directory ``aliases/<lang>``) with the
    Snowball ``algorithm``; None removes them. Files are replaced, never edited (bundles are
    changed through hard-linked copies), ``stem.json`` last: it is what makes a reader use
    them. Returns the number of stem keys."""
    for name in STEM_FILES:
        (table / name).unlink(missing_ok=True)
    if algorithm is None:
        return 0
    keys = marisa_trie.Trie()
    keys.mmap(str(table / L.AliasTable.KEYS))
    tmp = table / "stems.tmp"
    ids = array("q")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for key, kid in keys.iteritems():
            stem = stem_key(algorithm, key)
            if stem is not None and stem != key:  # a key that is its own stem is found exactly
                f.write(stem + "\n")
                ids.append(kid)
    targets = np.frombuffer(ids, np.int64).astype(np.int32) if len(ids) else np.zeros(0, np.int32)
    n = write_key_map(table, tmp, targets, (L.AliasTable.STEM, L.AliasTable.STEM_OFFSETS, L.AliasTable.STEM_TARGETS))
    (table / L.AliasTable.STEM_CONFIG).write_text(json.dumps({"algorithm": algorithm}) + "\n", encoding="utf-8")
    return n


def write_all_stems(aliases: Path, stem_langs: Mapping[str, str]) -> dict[str, int]:
    """Stem keys for every table under ``aliases`` whose language ``stem_langs`` lists (and
    none for the others): the number of stem keys by language."""
    counts = {}
    for table in sorted(p for p in aliases.iterdir() if p.is_dir()):
        n = write_stems(table, stem_langs.get(table.name))
        if table.name in stem_langs:
            counts[table.name] = n
    return counts


def record_stem_langs(build_json: Path, stems: Mapping[str, str]) -> None:
    """Note the chosen stem languages in the KB's recipe (``kb/build.json``, replaced
    atomically: it may be a hard link into the live bundle), so ``kb add`` and ``kb
    compact`` write the same ones."""
    if not build_json.is_file():
        return
    build = read_json_object(build_json, "The KB's record of its sources")
    build["options"] = {**(build.get("options") or {}), "stem_langs": dict(sorted(stems.items()))}
    atomic_write_text(build_json, json.dumps(build, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
