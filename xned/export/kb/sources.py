"""KB sources by file name, read into a ``KBBuilder`` (``xned/export/kb/build.py``):

* ``*.tsv`` entity files in the extract format: ``qid  type  en_label  en_description
  popularity  labels  [sources]`` with ``labels`` = ``lang:name|lang~:alias|...``
  (``~`` marks an alias/variant; ``mul``, ``und``, ``match``, ``native`` = language not
  stated). Lines starting with ``#`` are comments.
* ``*.counts.tsv`` alias counts: ``lang  alias  qid  count`` (e.g. anchor counts).
* ``*.jsonl`` entities: ``{"qid", "type", "label", "description", "popularity",
  "labels": {"es": "..."}, "aliases": {"es": ["...", ...]}}``.
* Wikidata JSON dumps (``*.json[.gz|.bz2]``, ``xned/export/kb/wikidata.py``) and Wikipedia XML
  dumps (``*.xml[.bz2]``, ``xned/export/kb/anchors.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xned.config import MAX_SOURCE_LINE_BYTES
from xned.errors import KBBuildError
from xned.export.kb import wikidata as dumps
from xned.export.kb.anchors import read_wikipedia
from xned.export.kb.builder import KBBuilder
from xned.export.wikimedia import is_wikipedia
from xned.types import QID_RE


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        # a bounded read: a file with no line ends is not read whole into memory
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_SOURCE_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_SOURCE_LINE_BYTES:
                raise KBBuildError(
                    f"{path}:{lineno}: line longer than {MAX_SOURCE_LINE_BYTES} bytes; is this the right file?"
                )
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise KBBuildError(
                    f"{path}:{lineno}: not valid UTF-8 ({exc.reason}); convert the file to UTF-8."
                ) from None


_NUM = re.compile(r"([A-Za-z_][\w-]*)\s*[:=]\s*(-?\d+(?:\.\d+)?)")


def parse_popularity(field: str) -> dict[str, float]:
    """'nsi:2' -> {'nsi': 2}; 'wof_espop=96;wdwords=10' -> both; empty -> {}."""
    return {k: float(v) for k, v in _NUM.findall(field)}


def _rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """The tab-separated fields of each line that is not blank or a ``#`` comment, with the
    ``file:line`` that names it."""
    for lineno, line in _lines(path):
        if line.strip() and not line.startswith("#"):
            yield f"{path.name}:{lineno}", line.split("\t")


def read_entity_tsv(path: Path, b: KBBuilder) -> int:
    n = 0
    for where, cols in _rows(path):
        if len(cols) < 6:
            b.fail_or_warn(
                "bad_line",
                f"{where}: expected at least 6 tab-separated columns "
                f"(qid, type, en_label, en_description, popularity, labels), got {len(cols)}",
            )
            continue
        qid, typ, label, desc, popf, labels = cols[:6]
        if not b.add_entity(
            qid.strip(),
            type=typ.strip(),
            label=label,
            description=desc,
            popularity=parse_popularity(popf),
            where=where,
        ):
            continue
        n += 1
        if label.strip():
            b.add_name("en", label, qid, where=where)
        for item in labels.split("|"):
            if not item:
                continue
            code, sep, name = item.partition(":")
            if not sep:
                b.report.warn("bad_label", f"{where}: label {item!r} has no 'lang:' prefix")
                continue
            alias = code.endswith("~")
            b.add_name(code.rstrip("~"), name, qid, alias=alias, where=where)
    return n


def read_counts_tsv(path: Path, b: KBBuilder) -> int:
    n = 0
    for where, cols in _rows(path):
        if len(cols) != 4:
            b.fail_or_warn(
                "bad_line",
                f"{where}: expected 4 columns (lang, alias, qid, count), got {len(cols)}",
            )
            continue
        lang, alias, qid, count = cols
        try:
            c = float(count)
        except ValueError:
            b.fail_or_warn("bad_count", f"{where}: count {count!r} is not a number")
            continue
        if not QID_RE.fullmatch(qid):
            b.fail_or_warn("bad_qid", f"{where}: invalid QID {qid!r}")
            continue
        b.add_count(lang, alias, qid, c, where=where)
        n += 1
    return n


def read_entity_jsonl(path: Path, b: KBBuilder) -> int:
    n = 0
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            b.fail_or_warn("bad_json", f"{where}: malformed JSON ({exc})")
            continue
        qid = str(obj.get("qid", ""))
        pop = obj.get("popularity")
        pops = (
            {"jsonl": float(pop)}
            if isinstance(pop, (int, float))
            else ({k: float(v) for k, v in pop.items()} if isinstance(pop, dict) else {})
        )
        if not b.add_entity(
            qid,
            type=str(obj.get("type") or ""),
            label=str(obj.get("label") or ""),
            description=str(obj.get("description") or ""),
            popularity=pops,
            where=where,
        ):
            continue
        n += 1
        if obj.get("label"):
            b.add_name("en", str(obj["label"]), qid, where=where)
        for code, name in (obj.get("labels") or {}).items():
            b.add_name(code, str(name), qid, where=where)
        for code, names in (obj.get("aliases") or {}).items():
            for name in names if isinstance(names, list) else [names]:
                b.add_name(code, str(name), qid, alias=True, where=where)
    return n


def read_source(path: Path, b: KBBuilder, **kw: Any) -> int:
    path = Path(path)
    if not path.is_file():
        raise KBBuildError(f"KB source {path} not found.")
    name = path.name.lower()
    if name.endswith(".counts.tsv"):
        return read_counts_tsv(path, b)
    if name.endswith(".tsv"):
        return read_entity_tsv(path, b)
    if name.endswith(".jsonl"):
        return read_entity_jsonl(path, b)

    if re.search(r"\.json(\.gz|\.bz2)?$", name):
        return dumps.read_wikidata(path, b, **kw)
    if is_wikipedia(path):
        return read_wikipedia(path, b, **kw)
    raise KBBuildError(
        f"Unknown KB source format for {path}: expected .tsv, .counts.tsv, .jsonl, "
        f"a Wikidata .json[.gz|.bz2] dump or a Wikipedia .xml[.bz2] dump."
    )
