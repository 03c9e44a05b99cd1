"""The person-name lexicon (``xned/assets/names``): given and family names of every locale
Faker ships (MIT; 80+ locales, Latin, Cyrillic, Greek, Arabic, Hebrew, CJK and Indic
scripts), normalized as alias keys are, in two marisa tries that the engine memory-maps
(``xned.engine.person``). Rebuilt by ``xned export person-names``; the default bundle and
every bundle a user builds read the same files."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import marisa_trie

from xned.engine.normalize import normalize
from xned.errors import InputError
from xned.fsutil import atomic_write_text, replace_dir

#: names shorter than this (after normalization) are left out: initials and two-letter
#: names collide with too many words
MIN_CHARS = 2


def _strings(value: Any) -> Iterable[str]:
    """The strings of a Faker name list: a tuple/list, an OrderedDict of name -> weight, or
    tuples of (kanji, kana, romanized) pairs."""
    items = value.keys() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, tuple):
            yield from (x for x in item if isinstance(x, str))


def collect() -> tuple[dict[str, set[str]], dict[str, Any]]:
    """``{"given": {...}, "family": {...}}`` normalized keys from Faker, and provenance."""
    try:
        import faker
        import faker.providers.person as person
    except ImportError:
        raise InputError("xned export person-names needs Faker: pip install 'xned[export]'") from None

    names: dict[str, set[str]] = {"given": set(), "family": set()}
    locales = []
    for mod in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{mod.name}"), "Provider", None)
        if provider is None:
            continue
        locales.append(mod.name)
        for attr in dir(provider):
            kind = "given" if attr.startswith("first_name") else "family" if attr.startswith("last_name") else None
            value = getattr(provider, attr, None)
            if kind is None or callable(value) or not isinstance(value, (tuple, list, dict)):
                continue
            for raw in _strings(value):
                for part in raw.replace("-", " ").split():  # "Jean-Pierre", "De la Cruz": each word
                    key = normalize(part)
                    if len(key) >= MIN_CHARS and any(ch.isalpha() for ch in key):
                        names[kind].add(key)
    prov = {
        "source": f"faker=={faker.VERSION} (faker.providers.person, MIT License)",
        "locales": sorted(locales),
        "given": len(names["given"]),
        "family": len(names["family"]),
        "min_chars": MIN_CHARS,
    }
    return names, prov


NOTICE = """Person-name lexicon (given.marisa, family.marisa): given and family names from the
person providers of Faker (https://github.com/joke2k/faker), MIT License,
Copyright (c) 2012 Daniele Faraglia. Normalized and stored as keys only.
"""


def build_person_names(out: Path) -> dict[str, Any]:
    """Write ``given.marisa``, ``family.marisa``, ``names.json`` and ``NOTICE`` to ``out``
    (replaced whole)."""

    names, prov = collect()
    out = Path(out)
    stage = out.with_name(out.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for kind, keys in names.items():
        marisa_trie.Trie(sorted(keys)).save(str(stage / f"{kind}.marisa"))
    atomic_write_text(stage / "names.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    atomic_write_text(stage / "NOTICE", NOTICE)
    replace_dir(stage, out)
    return prov
