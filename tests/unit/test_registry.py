"""The default bundle's entity source: npm packages (name-suggestion-index, CLDR names,
wikidata-lang) read into entity records, on miniature packages written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xned.errors import KBBuildError
from xned.export.kb.registry import build_registry_jsonl


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


@pytest.fixture()
def packages(tmp_path):
    nsi, cldr, wdlang = tmp_path / "nsi", tmp_path / "cldr", tmp_path / "wdlang"
    _write(
        nsi / "dist" / "wikidata" / "wikidata.json",
        {"wikidata": {"Q37158": {"label": "Colgate", "description": "brand of oral hygiene products"}, "bad": {}}},
    )
    _write(
        nsi / "dist" / "json" / "nsi.json",
        {
            "nsi": {
                "brands/shop/chemist": {
                    "items": [
                        {
                            "tags": {
                                "brand": "Colgate",
                                "brand:wikidata": "Q37158",
                                "brand:ja": "コルゲート",
                                "name": "Colgate",
                                "alt_name": "Colgate-Palmolive;Colgate Co",
                            },
                            "matchNames": ["colgate store"],
                        },
                        {"tags": {"brand": "Nowhere", "brand:wikidata": "not-a-qid"}},
                    ]
                },
                "flags/man_made/flagpole": {
                    "items": [
                        {
                            "tags": {
                                "flag:type": "national",
                                "country": "fr",
                                "subject": "France",
                                "subject:wikidata": "Q142",
                            }
                        }
                    ]
                },
            }
        },
    )
    for locale, fr_name, alt, basque in (
        ("de", "Frankreich", None, "Baskisch"),
        ("es", "Francia", "República Francesa", "euskera"),
    ):
        terr = {"FR": fr_name, **({"FR-alt-variant": alt} if alt else {})}
        _write(
            cldr / "main" / locale / "territories.json",
            {"main": {locale: {"localeDisplayNames": {"territories": terr}}}},
        )
        _write(
            cldr / "main" / locale / "languages.json",
            {"main": {locale: {"localeDisplayNames": {"languages": {"eu": basque}}}}},
        )
    _write(
        wdlang / "data" / "languages.json",
        [{"wd": "Q8752", "label": "Basque", "wmCode": ["eu"], "iso6391": ["eu"]}, {"wd": None, "label": "x"}],
    )
    return nsi, cldr, wdlang


def test_packages_become_entity_records(tmp_path, packages):
    out = tmp_path / "registry.jsonl"
    counts = build_registry_jsonl(*packages, out)
    recs = {r["qid"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert sorted(recs) == ["Q142", "Q37158", "Q8752"]  # "not-a-qid" and the unnamed record are skipped
    assert counts == {"entities": 3, "types": {"brand": 1, "country": 1, "language": 1}, "countries": 1}
    colgate = recs["Q37158"]
    assert (colgate["label"], colgate["description"], colgate["type"]) == (
        "Colgate",
        "brand of oral hygiene products",
        "brand",
    )
    assert colgate["labels"]["ja"] == "コルゲート" and colgate["labels"]["mul"] == "Colgate"
    assert set(colgate["aliases"]["mul"]) == {"Colgate-Palmolive", "Colgate Co", "colgate store"}
    france = recs["Q142"]  # joined from the national flag's ISO code to the CLDR territory names
    assert france["labels"] == {"de": "Frankreich", "en": "France", "es": "Francia"}
    assert france["aliases"] == {"es": ["República Francesa"]}
    assert france["popularity"] == {"cldr": 0.0}  # no CLDR locale of a French region here
    basque = recs["Q8752"]
    assert basque["label"] == "Basque" and basque["labels"] == {"de": "Baskisch", "es": "euskera"}
    assert basque["popularity"] == {"cldr": 0.0}


def test_a_package_that_is_not_one_is_a_clear_error(tmp_path, packages):
    nsi, cldr, wdlang = packages
    with pytest.raises(KBBuildError, match="not found"):
        build_registry_jsonl(tmp_path / "missing", cldr, wdlang, tmp_path / "out.jsonl")
    (wdlang / "data" / "languages.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(KBBuildError, match="not valid JSON"):
        build_registry_jsonl(nsi, cldr, wdlang, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
