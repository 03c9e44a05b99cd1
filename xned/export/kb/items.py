"""Wikidata dump items decoded with a typed schema (``msgspec.Struct``): only the fields a
KB build reads (labels, descriptions, aliases, sitelinks, P31 and P279) become Python
objects; the claims, references and qualifiers that make up most of a real item's bytes are
skipped by the decoder. ``parse_item`` gives exactly what ``kb.wikidata._parse_entity``
gives for the generic decoding; a line whose shape the schema does not fit (a ``[]`` for an
empty map, say) raises ``msgspec.ValidationError`` and takes the generic path."""

from __future__ import annotations

from typing import Any

import msgspec

DecodeError = msgspec.DecodeError  # not JSON
ValidationError = msgspec.ValidationError  # JSON, but not of the schema's shape (a subclass of DecodeError)

SKIPPED_SITES = ("commonswiki", "specieswiki", "metawiki")


class Term(msgspec.Struct):
    value: Any = None


class DataValue(msgspec.Struct):
    value: Any = None


class Snak(msgspec.Struct):
    datavalue: DataValue | None = None


class Claim(msgspec.Struct):
    mainsnak: Snak | None = None


class Claims(msgspec.Struct):
    P31: list[Claim] = []
    P279: list[Claim] = []


class Site(msgspec.Struct):
    title: Any = ""


class Item(msgspec.Struct):
    """The fields of a dump item a build reads; Wikibase writes an empty map as ``[]``."""

    id: Any = None
    type: Any = None
    labels: dict[str, Term] | list[Any] = {}
    descriptions: dict[str, Term] | list[Any] = {}
    aliases: dict[str, list[Term]] | list[Any] = {}
    claims: Claims | list[Any] | None = None
    sitelinks: dict[str, Site] | list[Any] = {}


def _map(value: dict | list) -> dict:
    return value if isinstance(value, dict) else {}


decoder = msgspec.json.Decoder(Item)


def _item_ids(claims: list[Claim]) -> list[str]:
    out = []
    for c in claims:
        dv = c.mainsnak.datavalue if c.mainsnak is not None else None
        v = dv.value.get("id") if dv is not None and isinstance(dv.value, dict) else None
        if isinstance(v, str) and v[:1] == "Q" and v[1:].isdigit():
            out.append(v)
    return out


def parse_item(item: Item) -> tuple | None:
    """(qid, type, English label, English description, sitelink count, names, Wikipedia
    titles, P31 ids, P279 ids), or None for what is not an item."""
    qid = item.id
    if item.type != "item" or not isinstance(qid, str) or not qid.startswith("Q"):
        return None
    labels, aliases, sitelinks = _map(item.labels), _map(item.aliases), _map(item.sitelinks)
    claims = item.claims if isinstance(item.claims, Claims) else None
    names: list[tuple[str, Any, bool]] = [(code, t.value, False) for code, t in labels.items() if t.value]
    names += [(code, t.value, True) for code, ts in aliases.items() for t in ts if t.value]
    p31 = _item_ids(claims.P31) if claims is not None else []
    p279 = _item_ids(claims.P279) if claims is not None else []
    titles = {
        site[:-4]: v.title for site, v in sitelinks.items() if site.endswith("wiki") and site not in SKIPPED_SITES
    }
    en = labels.get("en")
    desc = _map(item.descriptions).get("en")
    en_label = en.value if en is not None and en.value is not None else ""
    en_desc = desc.value if desc is not None and desc.value is not None else ""
    return qid, p31[0] if p31 else "", en_label, en_desc, len(sitelinks), names, titles, p31, p279
