"""How a KB is built, as one object: the options of ``xned kb build`` that shape the KB itself.

One ``KBOptions`` goes whole from the CLI to the builder of every reading process (a shard,
a reading worker), and is recorded in ``kb/meta.json`` (``recipe``) so that ``xned kb add``
and ``xned kb compact`` build with the same options (``from_recipe``). What only changes how
fast a KB is built (worker counts, byte ranges) is not part of the recipe.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from xned.export.kb.filter import EntityFilter
from xned.export.spill import RUN_RECORDS

#: reader arguments that change how a source is read, not what the KB holds
SPEED_ONLY = ("workers", "byte_range")


@dataclass(frozen=True)
class KBOptions:
    """What a KB holds: the languages of its alias tables (None: all), candidates kept per
    alias, whether a malformed record stops the build (``strict``), the readers' arguments
    (``titles_tsv``, ``lang``, ``link_prob``, ``workers``), the Wikidata items kept
    (``entity_filter``), the languages given stem keys (language -> Snowball algorithm; None:
    ``kb.stems.STEM_LANGS``) and the records a sorted run holds in memory."""

    langs: AbstractSet[str] | None = None  # kept as a frozenset
    top_k: int = 30
    strict: bool = False
    reader_args: dict[str, Any] = field(default_factory=dict)
    entity_filter: EntityFilter | None = None
    stem_langs: dict[str, str] | None = None
    run_records: int = RUN_RECORDS

    def __post_init__(self) -> None:
        if self.langs is not None and not isinstance(self.langs, frozenset):
            object.__setattr__(self, "langs", frozenset(self.langs))
        if self.entity_filter is not None and not self.entity_filter.active:
            object.__setattr__(self, "entity_filter", None)

    @property
    def workers(self) -> int:
        """Processes that decode a dump and write the alias tables."""
        return max(1, int(self.reader_args.get("workers", 1) or 1))

    def reading(self, **extra: Any) -> dict[str, Any]:
        """The reader arguments of one source, with ``extra`` (``sitelinks``, ``byte_range``)."""
        return {**self.reader_args, **extra}

    def with_reader(self, **args: Any) -> KBOptions:
        return replace(self, reader_args={**self.reader_args, **args})

    def recipe(self, vectors: str) -> dict[str, Any]:
        """The options as ``kb/meta.json`` records them (``vectors``: the entity-vector rule)."""
        return {
            "langs": sorted(self.langs) if self.langs else None,
            "top_k": self.top_k,
            "strict": self.strict,
            "vectors": {"all": True, "none": False}.get(vectors, vectors),
            **({"filter": asdict(self.entity_filter)} if self.entity_filter is not None else {}),
            **({"stem_langs": dict(sorted(self.stem_langs.items()))} if self.stem_langs is not None else {}),
            "reader_args": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in self.reader_args.items() if k not in SPEED_ONLY
            },
        }

    @classmethod
    def from_recipe(cls, opts: dict[str, Any], **override: Any) -> KBOptions:
        """The options a KB was built with (its ``meta.json`` ``build.options``), ``override`` applied."""
        found = cls(
            langs=frozenset(opts["langs"]) if opts.get("langs") else None,
            top_k=int(opts.get("top_k", 30)),
            strict=bool(opts.get("strict", False)),
            reader_args={k: v for k, v in (opts.get("reader_args") or {}).items() if v is not None},
            entity_filter=EntityFilter.from_dict(opts.get("filter")),
            stem_langs=opts.get("stem_langs"),
        )
        return replace(found, **override)


def recipe_vectors(opts: dict[str, Any]) -> str:
    """The entity-vector rule a recipe records (older bundles: a boolean)."""
    v = opts.get("vectors", True)
    return "all" if v is True else "none" if v is False else str(v)


__all__ = ["KBOptions", "recipe_vectors"]
