"""Progress of a long ``xned link`` on stderr: a live bar on a terminal, otherwise a plain
line every few seconds (for batch logs); nothing with ``--quiet``."""

from __future__ import annotations

import sys
import time
from typing import Any

PLAIN_EVERY_S = 5.0


class Progress:
    def __init__(self, quiet: bool, total_bytes: int | None, read: Any):
        self.quiet = quiet
        self.total = total_bytes
        self.read = read  # object with .bytes consumed
        self.t0 = time.monotonic()
        self.last = self.t0
        self.docs = self.mentions = 0
        self._bar: Any = None
        self._task: Any = None
        if quiet:
            return
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("linking"),
                BarColumn(),
                TextColumn("{task.fields[docs]} docs · {task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("linking", total=total_bytes, docs=0, rate="")
            self._bar.start()

    def _rates(self) -> str:
        dt = max(time.monotonic() - self.t0, 1e-9)
        return f"{self.docs / dt:.1f} docs/s, {self.mentions / dt:.0f} mentions/s"

    def update(self, docs: int, mentions: int) -> None:
        self.docs, self.mentions = docs, mentions
        if self.quiet:
            return
        now = time.monotonic()
        if self._bar is not None:
            if now - self.last >= 0.2:
                self._bar.update(self._task, completed=self.read.bytes, docs=docs, rate=self._rates())
                self.last = now
            return
        if now - self.last >= PLAIN_EVERY_S:
            self.last = now
            share = eta = ""
            if self.total:
                frac = min(self.read.bytes / self.total, 1.0)
                share = f", {frac:.0%} of the input"
                if frac > 0:
                    eta = f", ETA {(now - self.t0) * (1 - frac) / frac:.0f} s"
            print(f"xned link: {docs} docs ({self._rates()}){share}{eta}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
