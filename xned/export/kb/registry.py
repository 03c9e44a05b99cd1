"""Entity data for the default bundle from npm packages only (no dumps, nothing from ../shared).

Sources (unpacked npm tarballs; versions and licenses recorded by the caller):

* ``name-suggestion-index`` (BSD-3-Clause; Wikidata labels/descriptions CC0):
  ``dist/wikidata/wikidata.json`` gives every referenced QID's English label and Wikidata
  description; ``dist/json/nsi.json`` items name the entity in their tags. For each
  ``brand|operator|network:wikidata = Q`` tag the names are ``brand``/``operator``/``network``
  and their ``:<lang>`` variants (untagged values go to the ``mul`` table); brand items also
  give ``name``/``name:<lang>``, ``official_name``, ``short_name``, ``alt_name`` and
  ``matchNames`` (aliases). National-flag items (``flag:type=national``) carry ``country``
  (ISO 3166 code) and ``subject:wikidata`` (the country's QID): the join from CLDR territory
  codes to QIDs.
* ``cldr-localenames-full`` (Unicode License v3): ``main/<locale>/territories.json`` and
  ``languages.json``: names of countries and languages in ~770 locales; ``-alt-short`` and
  ``-alt-variant`` forms are aliases. Locales map to alias tables by their language subtag.
* ``wikidata-lang`` (MIT): language code -> QID and English label, joining CLDR language codes
  to QIDs. Languages get the type ``language`` and no description (none is in the package).

Popularity (rank-normalized per source by the KB builder): NSI = number of NSI items naming
the entity (brands present in many regions have many); CLDR = number of CLDR locales of the
language or of the territory (a proxy for how widely used it is).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xned.errors import KBBuildError
from xned.fsutil import atomic_file
from xned.types import QID_RE

MAX_JSON_BYTES = 256 * 1024 * 1024
NAME_TAGS = ("brand", "operator", "network")
BRAND_NAME_TAGS = ("name",)
BRAND_ALIAS_TAGS = ("official_name", "short_name", "alt_name")
_LANG_SUFFIX = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")
_TYPES = {"brands": "brand", "operators": "operator", "transit": "transit network"}


@dataclass
class Ent:
    qid: str
    type: str = ""
    label: str = ""
    description: str = ""
    popularity: dict[str, float] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    aliases: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def record(self) -> dict[str, Any]:
        labels: dict[str, Any] = {}
        aliases: dict[str, list[str]] = {}
        for lang, names in sorted(self.labels.items()):
            first, *rest = sorted(names)
            labels[lang] = first
            if rest:
                aliases.setdefault(lang, []).extend(rest)
        for lang, names in sorted(self.aliases.items()):
            extra = sorted(n for n in names if n not in self.labels.get(lang, ()))
            if extra:
                aliases.setdefault(lang, []).extend(extra)
        return {
            "qid": self.qid,
            "type": self.type,
            "label": self.label,
            "description": self.description,
            "popularity": self.popularity,
            "labels": labels,
            "aliases": aliases,
        }


def _load(path: Path) -> Any:
    if not path.is_file():
        raise KBBuildError(f"{path} not found: is this an unpacked npm package directory?")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise KBBuildError(f"{path} is larger than {MAX_JSON_BYTES} bytes; refusing to read it.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KBBuildError(f"{path}: not valid JSON ({exc}).") from None


def _qid(value: Any) -> str | None:
    if isinstance(value, str) and QID_RE.fullmatch(value):
        return value
    return None


def read_nsi(pkg: Path, ents: dict[str, Ent]) -> dict[str, str]:
    """Add NSI entities; return the ISO country code -> QID join from national flags."""
    wd = _load(pkg / "dist" / "wikidata" / "wikidata.json").get("wikidata", {})
    nsi = _load(pkg / "dist" / "json" / "nsi.json").get("nsi", {})
    countries: dict[str, str] = {}
    for path, group in sorted(nsi.items()):
        kind = _TYPES.get(path.split("/", 1)[0], "")
        for item in group.get("items", []):
            tags = item.get("tags", {})
            if tags.get("flag:type") == "national" and _qid(tags.get("subject:wikidata")) and tags.get("country"):
                q = tags["subject:wikidata"]
                countries[str(tags["country"]).upper()] = q
                e = ents.setdefault(q, Ent(q))
                e.type = e.type or "country"
                if tags.get("subject"):
                    e.labels["en"].add(str(tags["subject"]))
                continue
            for base in NAME_TAGS:
                q = _qid(tags.get(f"{base}:wikidata"))
                if q is None:
                    continue
                e = ents.setdefault(q, Ent(q))
                e.type = e.type or (_TYPES["transit"] if base == "network" else kind or base)
                e.popularity["nsi"] = e.popularity.get("nsi", 0.0) + 1.0
                keys = [base] + (list(BRAND_NAME_TAGS) if base == "brand" else [])
                for key, value in tags.items():
                    stem, _, suffix = key.partition(":")
                    if stem not in keys or not isinstance(value, str) or not value.strip():
                        continue
                    if not suffix:
                        e.labels["mul"].add(value)
                    elif _LANG_SUFFIX.match(suffix):
                        e.labels[suffix].add(value)
                if base == "brand":
                    for key in BRAND_ALIAS_TAGS:
                        if isinstance(tags.get(key), str):
                            e.aliases["mul"].update(x.strip() for x in tags[key].split(";") if x.strip())
                    for m in item.get("matchNames", []):
                        if isinstance(m, str) and m.strip():
                            e.aliases["mul"].add(m)
    for q, info in wd.items():
        if _qid(q) is None or not isinstance(info, dict):
            continue
        e = ents.setdefault(q, Ent(q))
        e.label = str(info.get("label") or "")
        e.description = str(info.get("description") or "")
        if e.label:
            e.labels["en"].add(e.label)
    return countries


def _cldr_locales(pkg: Path) -> Iterator[tuple[str, Path]]:
    main = pkg / "main"
    if not main.is_dir():
        raise KBBuildError(f"{main} not found: is {pkg} the unpacked cldr-localenames-full package?")
    for d in sorted(main.iterdir()):
        if d.is_dir():
            yield d.name, d


def read_wikidata_lang(pkg: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Language code -> QID and QID -> English label."""
    data = _load(pkg / "data" / "languages.json")
    by_code: dict[str, str] = {}
    labels: dict[str, str] = {}
    for rec in data if isinstance(data, list) else []:
        q = _qid(rec.get("wd"))
        if q is None:
            continue
        labels[q] = str(rec.get("label") or "")
        for key in ("wmCode", "iso6391", "iso6393"):
            for code in rec.get(key) or []:
                by_code.setdefault(str(code), q)
    return by_code, labels


def read_cldr(pkg: Path, ents: dict[str, Ent], countries: dict[str, str], lang_qids: dict[str, str]) -> None:
    locales = [name for name, _ in _cldr_locales(pkg)]
    per_lang: dict[str, int] = defaultdict(int)
    per_region: dict[str, int] = defaultdict(int)
    for name in locales:
        parts = name.split("-")
        per_lang[parts[0]] += 1
        for p in parts[1:]:
            if len(p) == 2 and p.isupper():
                per_region[p] += 1
    for locale, d in _cldr_locales(pkg):
        lang = locale.split("-", 1)[0]
        for fname, section, qids in (
            ("territories.json", "territories", countries),
            ("languages.json", "languages", lang_qids),
        ):
            f = d / fname
            if not f.is_file():
                continue
            names = _load(f).get("main", {}).get(locale, {}).get("localeDisplayNames", {}).get(section, {})
            for code, value in names.items():
                base, _, alt = code.partition("-alt-")
                q = qids.get(base)
                if q is None or not isinstance(value, str) or not value.strip():
                    continue
                e = ents.setdefault(q, Ent(q))
                if section == "languages":
                    e.type = e.type or "language"
                    e.popularity["cldr"] = float(per_lang.get(base, 0))
                else:
                    e.type = e.type or "country"
                    e.popularity["cldr"] = float(per_region.get(base, 0))
                (e.aliases if alt else e.labels)[lang].add(value)


def build_registry_jsonl(nsi: Path, cldr: Path, wdlang: Path, out: Path) -> dict[str, Any]:
    """Write the entities as xned JSONL (``xned kb build`` input); return counts."""
    ents: dict[str, Ent] = {}
    countries = read_nsi(nsi, ents)
    lang_qids, lang_labels = read_wikidata_lang(wdlang)
    read_cldr(cldr, ents, countries, lang_qids)
    for q, e in ents.items():
        if not e.label:
            e.label = lang_labels.get(q, "") or next(iter(sorted(e.labels.get("en", ()))), "")
    types: dict[str, int] = defaultdict(int)
    with atomic_file(out) as f:
        for q in sorted(ents, key=lambda x: int(x[1:])):
            e = ents[q]
            if not e.label and not e.labels:
                continue
            types[e.type or "other"] += 1
            f.write(json.dumps(e.record(), ensure_ascii=False, sort_keys=True) + "\n")
    return {"entities": sum(types.values()), "types": dict(sorted(types.items())), "countries": len(countries)}
