"""``BuildReport``: what a KB build skipped or doubted, counted per kind with examples."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BuildReport:
    """What a build skipped or doubted: a count per kind and its first few examples (a
    dump with a million odd lines gives one summary line per kind, not a million)."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the examples, in order, and notes
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_warnings: int = 20
    per_kind: int = 3
    skipped: int = 0  # input records skipped as malformed (non-strict builds)

    def warn(self, kind: str, msg: str) -> None:
        self.counts[kind] += 1
        self.keep_example(kind, msg)

    def keep_example(self, kind: str, msg: str) -> None:
        ex = self.examples.setdefault(kind, [])
        if len(ex) < self.per_kind:
            ex.append(msg)
            if len(self.warnings) < self.max_warnings:
                self.warnings.append(msg)
