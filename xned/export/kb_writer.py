"""Write the bundle KB arrays (see ``xned/engine/kb.py`` for the layout), atomically and
deterministically: the same input gives byte-identical files."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import marisa_trie
import numpy as np

from xned.engine.kb import SEP
from xned.engine.normalize import fold


@dataclass
class EntityRow:
    qid: str
    type: str = ""
    label: str = ""
    description: str = ""
    popularity: float = 0.0


@dataclass
class AliasTableData:
    """key -> list of (qid, prior) already sorted best first; link_prob per key (NaN unknown)."""

    cands: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    link_prob: dict[str, float] = field(default_factory=dict)


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(arr), allow_pickle=False)


def _save_trie(path: Path, keys: list[str]) -> marisa_trie.Trie:
    trie = marisa_trie.Trie(keys)
    trie.save(str(path))
    return trie


def write_entities(
    root: Path, rows: list[EntityRow], vectors: np.ndarray | None = None
) -> tuple[marisa_trie.Trie, list[str]]:
    """Returns the QID trie (index = key id) and the type vocabulary."""
    root.mkdir(parents=True, exist_ok=True)
    trie = _save_trie(root / "qids.marisa", [r.qid for r in rows])
    order = np.argsort(np.array([trie[r.qid] for r in rows], dtype=np.int64), kind="stable")
    by_id = [rows[i] for i in order]  # row at position k has key id k
    types = sorted({r.type for r in rows})
    type_ix = {t: i for i, t in enumerate(types)}
    blob = bytearray()
    offsets = np.zeros(len(by_id) + 1, np.int64)
    for k, r in enumerate(by_id):
        blob += f"{r.label}{SEP}{r.description}".encode()
        offsets[k + 1] = len(blob)
    (root / "text.bin").write_bytes(bytes(blob))
    _save(root / "text_offsets.npy", offsets)
    _save(root / "type.npy", np.array([type_ix[r.type] for r in by_id], np.int32))
    _save(root / "popularity.npy", np.array([r.popularity for r in by_id], np.float32))
    if vectors is not None:
        v = np.asarray(vectors, np.float32)[order]
        scale = np.maximum(np.abs(v).max(axis=1), 1e-12) / 127.0
        q = np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8)
        _save(root / "vectors.npy", q)
        _save(root / "vector_scales.npy", scale.astype(np.float32))
    return trie, types


def write_alias_table(root: Path, table: AliasTableData, qid_index: Mapping[str, int]) -> int:
    root.mkdir(parents=True, exist_ok=True)
    keys = sorted(table.cands)
    trie = _save_trie(root / "keys.marisa", keys)
    n = len(trie)
    by_id: list[str] = [""] * n
    for k in keys:
        by_id[trie[k]] = k
    offsets = np.zeros(n + 1, np.int64)
    ents: list[int] = []
    pris: list[float] = []
    lp = np.full(n, np.nan, np.float32)
    for kid, k in enumerate(by_id):
        for qid, p in table.cands[k]:
            ents.append(qid_index[qid])
            pris.append(p)
        offsets[kid + 1] = len(ents)
        if k in table.link_prob:
            lp[kid] = table.link_prob[k]
    _save(root / "offsets.npy", offsets)
    _save(root / "cands.npy", np.array(ents, np.int32))
    _save(root / "priors.npy", np.array(pris, np.float32))
    _save(root / "link_prob.npy", lp)
    folds: dict[str, list[int]] = {}
    for kid, k in enumerate(by_id):
        fk = fold(k)
        if fk is not None:
            folds.setdefault(fk, []).append(kid)
    ftrie = _save_trie(root / "fold.marisa", sorted(folds))
    fids = [""] * len(ftrie)
    for fk in folds:
        fids[ftrie[fk]] = fk
    foff = np.zeros(len(ftrie) + 1, np.int64)
    targets: list[int] = []
    for i, fk in enumerate(fids):
        targets.extend(sorted(folds[fk]))
        foff[i + 1] = len(targets)
    _save(root / "fold_offsets.npy", foff)
    _save(root / "fold_targets.npy", np.array(targets, np.int32))
    return n


def write_kb(
    dest: Path,
    entities: list[EntityRow],
    tables: Mapping[str, AliasTableData],
    meta: dict,
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
) -> dict:
    """Write a complete KB directory at ``dest`` atomically (``dest.incomplete`` then
    rename). Returns the metadata written to ``meta.json``. A ``build`` entry of ``meta``
    (source paths and modification times, for ``xned kb compact``) goes to ``build.json``
    so every other file depends only on the content of the sources."""
    meta = dict(meta)
    build = meta.pop("build", None)
    tmp = dest.with_name(dest.name + ".incomplete")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        vectors = embed(entities) if embed is not None and entities else None
        trie, types = write_entities(tmp / "entities", entities, vectors)
        qid_index = {q: trie[q] for q in trie}
        counts = {}
        for lang in sorted(tables):
            counts[lang] = write_alias_table(tmp / "aliases" / lang, tables[lang], qid_index)
        meta = {
            **meta,
            "entities": len(trie),
            "types": types,
            "languages": counts,
            "vector_dim": 0 if vectors is None else int(vectors.shape[1]),
        }
        (tmp / "meta.json").write_text(
            json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if build is not None:
            (tmp / "build.json").write_text(
                json.dumps(build, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        old = dest.with_name(dest.name + ".old")
        if dest.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
