"""Build a bundle KB from entity files and alias counts.

Sources (``xned kb build SOURCE...``), chosen by file name:

* ``*.tsv`` entity files in the extract format: ``qid  type  en_label  en_description
  popularity  labels  [sources]`` with ``labels`` = ``lang:name|lang~:alias|...``
  (``~`` marks an alias/variant; ``mul``, ``und``, ``match``, ``native`` = language not
  stated). Lines starting with ``#`` are comments.
* ``*.counts.tsv`` alias counts: ``lang  alias  qid  count`` (e.g. anchor counts).
* ``*.jsonl`` entities: ``{"qid", "type", "label", "description", "popularity",
  "labels": {"es": "..."}, "aliases": {"es": ["...", ...]}}``.
* Wikidata JSON dumps (``*.json[.gz|.bz2]``) and Wikipedia XML dumps (``*.xml[.bz2]``):
  see ``xned/export/dumps.py``.

Priors. For alias key ``m`` in language ``L`` and candidate ``e``::

    q(e | m) ∝ kind(m, e) · (1 + log1p(T(e))) · (0.25 + pop(e))
    p(e | m) = (c_L(m, e) + β · q(e | m)) / (Σ_e' c_L(m, e') + β)

``c_L`` are native counts (anchors) where a source gives them; ``T(e)`` the entity's
counts summed over every language (transfer through the shared entity); ``kind`` is 1 for
a label and 0.5 for an alias; ``pop(e)`` the entity's popularity rank-normalized within
its source (so brand counts and populations become comparable), in [0, 1]; β = 1. With no
counts at all the prior is ``q``. Only the top ``k`` candidates are kept, so priors of a
key sum to at most 1. Link probability per key = anchor occurrences / text occurrences,
where a Wikipedia dump gives both; NaN otherwise.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.normalize import normalize, undot
from xned.errors import KBBuildError
from xned.export.kb_writer import AliasTableData, EntityRow, write_kb

QID_RE = re.compile(r"^Q[1-9][0-9]*$")
LANG_RE = re.compile(r"^[a-z]{2,3}$")
UNSTATED = {"mul", "und", "match", "native", "zxx", "mis"}
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINE = 4 * 1024 * 1024  # longest line read from a TSV/JSONL source
MAX_ALIAS_CHARS = 200
BETA = 1.0


def lang_key(code: str) -> str | None:
    """Table name for a source language code: 'pt-BR' -> 'pt', 'und' -> 'mul', None if invalid."""
    code = code.strip().lower().replace("_", "-")
    if code in UNSTATED:
        return "mul"
    base = code.split("-", 1)[0]
    return base if LANG_RE.match(base) else None


@dataclass
class BuildReport:
    sources: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_warnings: int = 20

    def warn(self, kind: str, msg: str) -> None:
        self.counts[kind] += 1
        if len(self.warnings) < self.max_warnings:
            self.warnings.append(msg)


@dataclass
class _Entity:
    type: str = ""
    label: str = ""
    description: str = ""
    pops: dict[str, float] = field(default_factory=dict)
    origin: str = ""


class KBBuilder:
    """Accumulates entities, names and counts; ``write`` computes priors and writes.

    Memory: one small record per entity plus one dict entry per (language, key, entity).
    """

    def __init__(
        self,
        *,
        langs: set[str] | None = None,
        top_k: int = 30,
        strict: bool = False,
        report: BuildReport | None = None,
    ):
        self.langs = langs
        self.top_k = top_k
        self.strict = strict
        self.report = report or BuildReport()
        self.entities: dict[str, _Entity] = {}
        # (lang, key) -> {qid: kind weight}
        self.names: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        # (lang, key) -> {qid: count}
        self.counts: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        self.occurrences: dict[str, dict[str, float]] = defaultdict(dict)  # lang -> key -> text count
        self.link_counts: dict[str, dict[str, float]] = defaultdict(dict)

    # -- validation helpers -----------------------------------------------------------------
    def fail_or_warn(self, kind: str, msg: str) -> None:
        if self.strict:
            raise KBBuildError(msg + " (run without --strict to skip and count such lines)")
        self.report.warn(kind, msg)

    def _want(self, lang: str) -> bool:
        return self.langs is None or lang in self.langs or lang == "mul"

    # -- adding data ------------------------------------------------------------------------
    def add_entity(
        self,
        qid: str,
        *,
        type: str = "",
        label: str = "",
        description: str = "",
        popularity: dict[str, float] | None = None,
        where: str = "",
    ) -> bool:
        if not QID_RE.match(qid):
            self.fail_or_warn("bad_qid", f"{where}: invalid QID {qid!r} (expected Q followed by digits)")
            return False
        label = _CTRL.sub(" ", label).strip()
        description = _CTRL.sub(" ", description).strip()
        ent = self.entities.get(qid)
        if ent is None:
            self.entities[qid] = _Entity(type, label, description, dict(popularity or {}), where)
            return True
        for name, new, old in (
            ("label", label, ent.label),
            ("description", description, ent.description),
        ):
            if new and old and new != old:
                self.report.warn(
                    "conflict",
                    f"{where}: duplicate QID {qid} with a different English {name} {new!r} "
                    f"(kept {old!r} from {ent.origin})",
                )
        ent.type = ent.type or type
        ent.label = ent.label or label
        ent.description = ent.description or description
        for k, v in (popularity or {}).items():
            ent.pops[k] = max(v, ent.pops.get(k, v))
        return True

    def add_name(self, lang_code: str, name: str, qid: str, *, alias: bool = False, where: str = "") -> None:
        lang = lang_key(lang_code)
        if lang is None:
            self.report.warn("bad_lang", f"{where}: unknown language code {lang_code!r} (name {name!r} skipped)")
            return
        if not self._want(lang):
            return
        key = normalize(_CTRL.sub(" ", name))
        if not key:
            self.report.warn("empty_alias", f"{where}: empty alias for {qid} in {lang_code!r}")
            return
        if len(key) > MAX_ALIAS_CHARS:
            self.report.warn("long_alias", f"{where}: alias of {len(key)} characters for {qid} skipped")
            return
        weight = 0.5 if alias else 1.0
        keys = [key]
        if (spaced := undot(key)) is not None:  # "パリス・ヒルトン" also as "パリス ヒルトン", "パリスヒルトン"
            keys += [spaced, spaced.replace(" ", "")]
        for k in keys:
            slot = self.names[lang][k]
            if slot.get(qid, 0.0) < weight:
                slot[qid] = weight

    def add_count(self, lang_code: str, name: str, qid: str, count: float, *, where: str = "") -> None:
        lang = lang_key(lang_code)
        if lang is None:
            self.report.warn("bad_lang", f"{where}: unknown language code {lang_code!r}")
            return
        if not math.isfinite(count) or count < 0:
            self.fail_or_warn(
                "bad_count",
                f"{where}: count {count!r} for {name!r} -> {qid} is not a non-negative number",
            )
            return
        if not self._want(lang):
            return
        key = normalize(name)
        if not key:
            self.report.warn("empty_alias", f"{where}: empty anchor text for {qid}")
            return
        slot = self.counts[lang][key]
        slot[qid] = slot.get(qid, 0.0) + count

    def add_occurrences(self, lang: str, key: str, n: float, linked: float) -> None:
        self.occurrences[lang][key] = self.occurrences[lang].get(key, 0.0) + n
        self.link_counts[lang][key] = self.link_counts[lang].get(key, 0.0) + linked

    # -- priors -----------------------------------------------------------------------------
    def _popularity(self) -> dict[str, float]:
        """Per-source rank normalization: each source's values become percentiles in (0, 1]."""
        by_source: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for qid, ent in self.entities.items():
            for src, val in ent.pops.items():
                by_source[src].append((val, qid))
        pop: dict[str, float] = {}
        for _src, vals in sorted(by_source.items()):
            arr = np.array([v for v, _ in vals], np.float64)
            order = arr.argsort(kind="stable")
            ranks = np.empty(len(arr), np.float64)
            sorted_vals = arr[order]
            # average rank for ties
            _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
            avg = first + (counts - 1) / 2.0 + 1.0
            ranks[order] = np.repeat(avg, counts)
            pct = ranks / len(arr)
            for (_, qid), p in zip(vals, pct, strict=True):
                pop[qid] = max(pop.get(qid, 0.0), float(p))
        return pop

    def tables(self, pop: dict[str, float]) -> dict[str, AliasTableData]:
        total: dict[str, float] = defaultdict(float)
        for lang_counts in self.counts.values():
            for slot in lang_counts.values():
                for qid, c in slot.items():
                    total[qid] += c
        out: dict[str, AliasTableData] = {}
        for lang in sorted(set(self.names) | set(self.counts)):
            names = self.names.get(lang, {})
            counts = self.counts.get(lang, {})
            table = AliasTableData()
            for key in sorted(set(names) | set(counts)):
                kinds = dict(names.get(key, {}))
                native = {q: c for q, c in counts.get(key, {}).items() if q in self.entities}
                for q in native:
                    kinds.setdefault(q, 0.5)
                kinds = {q: w for q, w in kinds.items() if q in self.entities}
                if not kinds:
                    continue
                q_raw = {
                    q: w * (1.0 + math.log1p(total.get(q, 0.0))) * (0.25 + pop.get(q, 0.0)) for q, w in kinds.items()
                }
                z = sum(q_raw.values())
                n_native = sum(native.values())
                pri = {q: (native.get(q, 0.0) + BETA * v / z) / (n_native + BETA) for q, v in q_raw.items()}
                ranked = sorted(pri.items(), key=lambda kv: (-kv[1], int(kv[0][1:])))[: self.top_k]
                table.cands[key] = [(q, float(np.float32(p))) for q, p in ranked]
                occ = self.occurrences.get(lang, {}).get(key)
                if occ:
                    linked = self.link_counts[lang].get(key, 0.0)
                    table.link_prob[key] = min(1.0, linked / occ)
            if table.cands:
                out[lang] = table
        return out

    def write(
        self,
        dest: Path,
        meta: dict[str, Any],
        embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    ) -> dict[str, Any]:
        if not self.entities:
            raise KBBuildError("No entities were read from the sources; nothing to build.")
        pop = self._popularity()
        rows = [
            EntityRow(q, e.type, e.label, e.description, pop.get(q, 0.0))
            for q, e in sorted(self.entities.items(), key=lambda kv: int(kv[0][1:]))
        ]
        tables = self.tables(pop)
        meta = {
            **meta,
            "priors": "q(e|m) ∝ kind·(1+log1p(T(e)))·(0.25+pop(e)); "
            "p = (c + β·q)/(Σc + β), β=1; top_k=" + str(self.top_k),
            "warnings": dict(sorted(self.report.counts.items())),
        }
        return write_kb(dest, rows, tables, meta, embed)


# -- readers ----------------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE:
                raise KBBuildError(f"{path}:{lineno}: line longer than {MAX_LINE} bytes; is this the right file?")
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


def read_entity_tsv(path: Path, b: KBBuilder) -> int:
    n = 0
    for lineno, line in _lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        where = f"{path.name}:{lineno}"
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
    for lineno, line in _lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        where = f"{path.name}:{lineno}"
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
        if not QID_RE.match(qid):
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
    from xned.export import dumps

    if re.search(r"\.json(\.gz|\.bz2)?$", name):
        return dumps.read_wikidata(path, b, **kw)
    if re.search(r"\.xml(\.bz2)?$|\.xml-.*\.bz2$|-shortened\.bz2$", name):
        return dumps.read_wikipedia(path, b, **kw)
    raise KBBuildError(
        f"Unknown KB source format for {path}: expected .tsv, .counts.tsv, .jsonl, "
        f"a Wikidata .json[.gz|.bz2] dump or a Wikipedia .xml[.bz2] dump."
    )


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
) -> tuple[dict[str, Any], BuildReport]:
    """Read every source and write the KB directory ``dest`` (e.g. ``bundle/kb``).

    ``meta.json`` records the sources (path, size, mtime) and options under ``build`` so
    ``xned kb compact`` can repeat the build; paths inside ``bundle`` are stored relative."""
    from xned.export.kb_incremental import source_record

    sources = [Path(s) for s in sources]
    b = KBBuilder(langs=langs, top_k=top_k, strict=strict)
    for src in sources:
        n = read_source(src, b, **(reader_args or {}))
        b.report.sources.append({"path": src.name, "records": n})
    root = Path(bundle) if bundle is not None else Path(dest).parent
    options = {
        "langs": sorted(langs) if langs else None,
        "top_k": top_k,
        "strict": strict,
        "vectors": embed is not None,
        # worker count does not change the output, so it is not part of the recipe
        "reader_args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in (reader_args or {}).items() if k != "workers"
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
