"""``KBBuilder``: gathers every record of a KB build on disk (the readers of
``kb.sources`` feed it), then merges them, computes the priors and writes the KB
(``kb.writer``); ``build_kb`` (``kb.build``) drives it.

Priors. For alias key ``m`` in language ``L`` and candidate ``e``::

    q(e | m) ∝ kind(m, e) · (1 + log1p(T(e))) · (0.25 + pop(e))
    p(e | m) = (c_L(m, e) + β · q(e | m)) / (Σ_e' c_L(m, e') + β)

``c_L`` are native counts (anchors) where a source gives them; ``T(e)`` the entity's
counts summed over every language (transfer through the shared entity); ``kind`` is 1 for
a label, 0.5 for an alias and 0.1 for one part of a middle-dot name ("トランプ" of
"ドナルド・トランプ"); ``pop(e)`` the entity's popularity rank-normalized within
its source (so brand counts and populations become comparable), in [0, 1]; β = 1. With no
counts at all the prior is ``q``. Only the top ``k`` candidates are kept, so priors of a
key sum to at most 1. Link probability per key = anchor occurrences / text occurrences,
where a Wikipedia dump gives both; NaN otherwise.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import marisa_trie
import numpy as np

from xned.engine import layout as L
from xned.engine.normalize import control_as_spaces, normalize, undot
from xned.errors import InputError, KBBuildError
from xned.export.kb.filter import kept_items, subclass_closure
from xned.export.kb.options import KBOptions
from xned.export.kb.priors import AliasTables, Ranks, entity_totals
from xned.export.kb.report import BuildReport
from xned.export.kb.writer import EntityIndex, EntityRow, write_kb
from xned.export.spill import Spill
from xned.fsutil import atomic_write_text
from xned.langs import normalize_lang
from xned.titles import TITLE_SEP
from xned.types import MAX_QID_CHARS, QID_RE, is_qid

UNSTATED = {"mul", "und", "match", "native", "zxx", "mis"}
MAX_ALIAS_CHARS = 200


PART_WEIGHT = 0.1  # ``kind`` of one part of a middle-dot name


def lang_key(code: str) -> str | None:
    """Table name for a source language code: the rule of ``xned.langs`` ('pt-BR' -> 'pt'),
    with codes of unstated language ('und', 'mul', ...) -> 'mul'; None if invalid."""
    if code.strip().lower() in UNSTATED:
        return "mul"
    try:
        return normalize_lang(code)
    except InputError:
        return None


class KBBuilder:
    """Accumulates entities, names and counts on disk; ``write`` computes priors and writes.

    Memory is bounded: every entity, name, count and occurrence is a text record in a
    ``Spill`` (sorted runs of ``run_records`` lines merged at the end), so the resident set
    is one run buffer plus a few bytes per entity (QID number, popularity) at write time.
    """

    def __init__(self, options: KBOptions | None = None, *, tmp_dir: Path | None = None):
        self.options = options = options or KBOptions()
        self.langs = set(options.langs) if options.langs else None
        self.top_k = options.top_k
        self.strict = options.strict
        self.report = BuildReport()
        self.run_records = run_records = options.run_records
        self.tmp_dir = tmp_dir
        # qnum, seq, flag, type, label, description, popularity, where
        self.entity_records = Spill("entities", run_records=run_records, tmp_dir=tmp_dir)
        # lang, key, qnum, kind, two values: N name weight, 0 | C count, 0 | O occurrences, linked
        self.alias_records = Spill("aliases", run_records=run_records, tmp_dir=tmp_dir)
        # lang, key, qnum, count: the C records again, for the totals T(e) before the priors
        self.count_records = Spill("counts", run_records=run_records, tmp_dir=tmp_dir)
        self.wiki_titles: Any = None  # Wikipedia title -> QID maps from Wikidata sitelinks (kb.wikidata)
        #: languages of the Wikipedia dumps of the build: their titles of the KB's entities are
        #: written beside it (``L.KBDir.WIKI_TITLES``) for ``xned experts train``
        self.wiki_langs: set[str] = set()
        self.filter = options.entity_filter
        # with a filter: qnum, P31 class (dump items) and parent, child (P279), see kb.filter
        self.class_records = Spill("classes", run_records=run_records, tmp_dir=tmp_dir)
        self.edge_records = Spill("edges", run_records=run_records, tmp_dir=tmp_dir)
        self._kept: np.ndarray | None = None
        self._lang_keys: dict[str, str | None] = {}  # source language code -> table (lang_key)
        self._named = ("", "")  # the last QID add_name checked, and its 10-digit number
        self._scratch: Path | None = None  # the entity index arrays for the table writers
        self.work_dirs: list[Path] = []  # run files adopted from reading workers (kb.wikidata)
        self.workers = options.workers  # processes writing alias tables (kb.writer.write_tables)
        self._source = 0
        self._start = 0
        self._seq = 0

    def hand_over(self) -> dict[str, Any]:
        """This builder's sorted runs (each spill's files and record count) and report, for
        another builder to ``adopt``; the run files are no longer this builder's to delete."""
        return {
            "runs": {name: ([str(p) for p in sp.finish()], len(sp)) for name, sp in self.spills().items()},
            "skipped": self.report.skipped,
            "counts": dict(self.report.counts),
            "examples": {k: list(v) for k, v in self.report.examples.items()},
            "wiki_langs": sorted(self.wiki_langs),
        }

    def adopt(self, handed: dict[str, Any]) -> None:
        """Merge what another builder handed over (``hand_over``) into this one."""
        spills = self.spills()
        for name, (runs, total) in handed["runs"].items():
            spills[name].adopt([Path(p) for p in runs], total)
        self.report.skipped += handed["skipped"]
        for kind, c in handed["counts"].items():
            self.report.counts[kind] += c
        for kind, msgs in handed["examples"].items():
            for msg in msgs:
                self.report.keep_example(kind, msg)
        self.wiki_langs.update(handed["wiki_langs"])

    def begin_source(self, index: int, start: int = 0) -> None:
        """Records from now on come from source ``index`` (its place in the build's source
        list), read from byte ``start`` (a shard of a dump; 0 for a whole source). Records of
        one QID merge in the order (source, start, reading order), so a build sharded any
        way merges them as the single-process build does."""
        self._source, self._start, self._seq = index, start, 0

    @property
    def source(self) -> int:
        """The index of the source being read (``begin_source``)."""
        return self._source

    def spills(self) -> dict[str, Spill]:
        """The record spills a shard hands over (``kb.shards``)."""
        return {
            "entities": self.entity_records,
            "aliases": self.alias_records,
            "counts": self.count_records,
            "classes": self.class_records,
            "edges": self.edge_records,
        }

    def close(self) -> None:
        for sp in self.spills().values():
            sp.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        for d in self.work_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.work_dirs = []
        if self.wiki_titles is not None:
            self.wiki_titles.close()

    # -- validation helpers -----------------------------------------------------------------
    def fail_or_warn(self, kind: str, msg: str) -> None:
        if self.strict:
            raise KBBuildError(msg + " (run without --strict to skip and count such lines)")
        self.report.skipped += 1
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
        weak: bool = False,
        dump: bool = False,
    ) -> bool:
        """Record an entity. Several records of one QID merge in reading order: the first
        non-empty type, label and description win (a different later one is reported as a
        conflict unless ``weak``), popularity keeps the maximum per source. ``dump`` marks an
        item of a Wikidata dump (the one kind of record an entity filter drops)."""
        if not QID_RE.fullmatch(qid):
            self.fail_or_warn("bad_qid", f"{where}: invalid QID {qid!r} (expected Q followed by digits)")
            return False
        if len(qid) > MAX_QID_CHARS:
            self.fail_or_warn("bad_qid", f"{where}: QID {qid!r} is out of range")
            return False
        pops = ";".join(f"{k}={float(v)!r}" for k, v in sorted((popularity or {}).items()) if math.isfinite(v))
        fields = (control_as_spaces(x).strip() for x in (type, label, description, where))
        typ, lab, desc, wh = fields
        self._seq += 1
        seq = f"{self._source:05d}{self._start:015d}{self._seq:012d}"
        flag = "w" if weak else "d" if dump else "-"
        self.entity_records.add(f"{int(qid[1:]):010d}\t{seq}\t{flag}\t{typ}\t{lab}\t{desc}\t{pops}\t{wh}")
        return True

    def add_classes(self, qid: str, instance_of: list[str], subclass_of: list[str]) -> None:
        """A dump item's P31 and P279 values, kept only when an entity filter needs them."""
        if self.filter is None:
            return
        qn = int(qid[1:])
        for c in dict.fromkeys(instance_of):
            self.class_records.add(f"{qn:010d}\t{int(c[1:]):010d}")
        for c in dict.fromkeys(subclass_of):
            self.edge_records.add(f"{int(c[1:]):010d}\t{qn:010d}")

    def add_name(self, lang_code: str, name: str, qid: str, *, alias: bool = False, where: str = "") -> None:
        try:
            lang = self._lang_keys[lang_code]
        except KeyError:
            lang = self._lang_keys[lang_code] = lang_key(lang_code)
        if lang is None:
            self.report.warn("bad_lang", f"{where}: unknown language code {lang_code!r} (name {name!r} skipped)")
            return
        if not self._want(lang):
            return
        key = normalize(control_as_spaces(name))
        if not key:
            self.report.warn("empty_alias", f"{where}: empty alias for {qid} in {lang_code!r}")
            return
        if len(key) > MAX_ALIAS_CHARS:
            self.report.warn("long_alias", f"{where}: alias of {len(key)} characters for {qid} skipped")
            return
        if qid != self._named[0]:  # an item's names come together: check and format its QID once
            if not is_qid(qid):
                self.fail_or_warn("bad_qid", f"{where}: invalid QID {qid!r} for name {name!r}")
                return
            self._named = (qid, f"{int(qid[1:]):010d}")
        qn = self._named[1]
        tail = f"\t{qn}\tN\t{'0.5' if alias else '1.0'}\t0"
        add = self.alias_records.add
        add(f"{lang}\t{key}{tail}")
        if (spaced := undot(key)) is not None:  # "パリス・ヒルトン" also as "パリス ヒルトン", "パリスヒルトン"
            add(f"{lang}\t{spaced}{tail}")
            add(f"{lang}\t{spaced.replace(' ', '')}{tail}")
            # Each part of a dotted name ("ドナルド・トランプ": "トランプ") is a weak alias:
            # Japanese and Chinese text often names a foreign person or firm by one part.
            parts = spaced.split(" ")
            if len(parts) > 1:
                for part in set(parts):
                    if len(part) >= 2:
                        add(f"{lang}\t{part}\t{qn}\tN\t{PART_WEIGHT}\t0")

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
        key = normalize(control_as_spaces(name))
        if not key:
            self.report.warn("empty_alias", f"{where}: empty anchor text for {qid}")
            return
        if len(key) > MAX_ALIAS_CHARS:
            self.report.warn("long_alias", f"{where}: anchor of {len(key)} characters for {qid} skipped")
            return
        if not is_qid(qid):
            self.fail_or_warn("bad_qid", f"{where}: invalid QID {qid!r}")
            return
        qn = f"{int(qid[1:]):010d}"
        self.alias_records.add(f"{lang}\t{key}\t{qn}\tC\t{float(count)!r}\t0")
        self.count_records.add(f"{lang}\t{key}\t{qn}\t{float(count)!r}")  # the same order, for T(e)

    def add_occurrences(self, lang: str, key: str, n: float, linked: float) -> None:
        """``key`` appeared ``n`` times in text, ``linked`` of them as a link."""
        self.alias_records.add(f"{lang}\t{key}\t{0:010d}\tO\t{float(n)!r}\t{float(linked)!r}")

    # -- merging ----------------------------------------------------------------------------
    def _merged_entities(self, *, warn: bool = False) -> Iterator[tuple[int, str, str, str, dict[str, float]]]:
        kept = self._kept
        wanted = _walk(kept) if kept is not None else None
        nxt = next(wanted, None) if wanted is not None else None
        for qn, lines in self._entity_groups():
            if wanted is not None:  # filtered (kb.filter): a merge join with the kept QIDs, no split
                while nxt is not None and nxt < qn:
                    nxt = next(wanted, None)
                if nxt != qn and all(line.split("\t", 3)[2] != "-" for line in lines):
                    continue
            rows = [line.split("\t")[1:] for line in lines]
            typ = label = desc = ""
            origin = {"label": "", "description": ""}
            pops: dict[str, float] = {}
            for _seq, flag, t, lab, d, pf, where in rows:
                typ = typ or t
                for name, new in (("label", lab), ("description", d)):
                    old = label if name == "label" else desc
                    if warn and new and old and new != old and flag != "w":
                        self.report.warn(
                            "conflict",
                            f"{where}: duplicate QID Q{int(qn)} with a different English {name} {new!r} "
                            f"(kept {old!r} from {origin[name]})",
                        )
                    if new and not old:
                        origin[name] = where
                        if name == "label":
                            label = new
                        else:
                            desc = new
                for item in pf.split(";") if pf else ():
                    k, _, v = item.partition("=")
                    pops[k] = max(float(v), pops.get(k, float(v)))
            yield int(qn), typ, label, desc, pops

    def _apply_filter(self) -> None:
        """Decide which dump items the filter keeps (every source read: the class tree is
        complete); ``_merged_entities`` then drops the others."""
        assert self.filter is not None
        closure = None
        if self.filter.classes:
            closure = subclass_closure(self.edge_records.merged(), [int(c[1:]) for c in self.filter.classes])
        self._kept = None
        self._kept = kept_items(self.filter, self._sitelinks(), self.class_records.merged(), closure)

    def _entity_groups(self) -> Iterator[tuple[int, list[str]]]:
        """The merged entity records by QID number (the first field, 10 digits), unsplit."""
        for qn, lines in itertools.groupby(self.entity_records.merged(), key=lambda line: line[:10]):
            yield int(qn), list(lines)

    def _sitelinks(self) -> Iterator[tuple[int, float]]:
        """(QID number, sitelinks) of every entity: the largest ``sitelinks`` popularity of its
        records, 0 without one; only the popularity field is read."""
        for qn, lines in self._entity_groups():
            best = None
            for line in lines:
                for item in line.rsplit("\t", 2)[1].split(";"):
                    if item.startswith("sitelinks="):
                        v = float(item[10:])
                        best = v if best is None else max(best, v)
            yield qn, 0.0 if best is None else best

    def _rows(self, ranks: Ranks) -> Iterator[EntityRow]:
        """The merged entities, popularity left at 0: its percentile ranks need every entity,
        so ``ranks`` collects the values and ``write_entities`` asks for them at the end."""
        for pos, (qn, typ, label, desc, pops) in enumerate(self._merged_entities(warn=True)):
            ranks.add(pos, pops)
            yield EntityRow(f"Q{qn}", typ, label, desc)

    def _tables(self, index: EntityIndex) -> AliasTables:
        """The alias tables to write: the sorted alias records, the entity index and the
        totals T(e), where worker processes can read them (see the module docstring)."""
        total = entity_totals(self.count_records.merged(), index)
        self._scratch = Path(tempfile.mkdtemp(prefix="xned-index-", dir=self.tmp_dir))
        return AliasTables.save(self.alias_records.sorted_runs(), self._scratch, index, total, self.top_k)

    def write(
        self,
        dest: Path,
        meta: dict[str, Any],
        embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    ) -> dict[str, Any]:
        if not len(self.entity_records):
            raise KBBuildError("No entities were read from the sources; nothing to build.")
        if self.filter is not None:
            self._apply_filter()
            meta = {
                **meta,
                "filter": {**asdict(self.filter), "kept_dump_items": 0 if self._kept is None else len(self._kept)},
            }
        ranks = Ranks()
        meta = {
            **meta,
            "priors": "q(e|m) ∝ kind·(1+log1p(T(e)))·(0.25+pop(e)); "
            "p = (c + β·q)/(Σc + β), β=1; top_k=" + str(self.top_k),
        }
        try:
            out = write_kb(
                dest, self._rows(ranks), self._tables, meta, embed, popularity=ranks.popularity, workers=self.workers
            )
            if self.wiki_titles is not None and self.wiki_langs:
                out["wiki_titles"] = write_wiki_titles(Path(dest), self.wiki_titles, sorted(self.wiki_langs))
        finally:
            self.close()
        # Conflicts are found while merging, so the warning counts are final only now.
        out["warnings"] = dict(sorted(self.report.counts.items()))
        meta_path = Path(dest) / L.KBDir.META
        atomic_write_text(meta_path, json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return out


def write_wiki_titles(dest: Path, titles: Any, langs: list[str]) -> dict[str, int]:
    """``dest/wiki_titles/<lang>.marisa``: the Wikipedia titles (``TitleMap``) of the
    entities ``dest`` holds, per language; returns the count per language."""
    qids = marisa_trie.Trie()
    qids.mmap(str(dest / L.KBDir.ENTITIES / L.Entities.QIDS))
    out_dir = dest / L.KBDir.WIKI_TITLES
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for lang in langs:
        kept = [k for k in titles.for_lang(lang).iterkeys() if k.rsplit(TITLE_SEP, 1)[1] in qids]
        marisa_trie.Trie(kept).save(str(out_dir / f"{lang}.marisa"))
        counts[lang] = len(kept)
    return counts


def _walk(sorted_qnums: np.ndarray) -> Iterator[int]:
    """The values of a sorted array as Python ints, a chunk at a time."""
    for a in range(0, len(sorted_qnums), 1 << 16):
        yield from sorted_qnums[a : a + (1 << 16)].tolist()
