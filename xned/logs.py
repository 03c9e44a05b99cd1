"""Progress lines: the ``log`` callback that long training-time steps take (the CLI passes one
that prints to stderr; the default says nothing), and ``Meter``, which turns a long pass's
counts into one line now and then."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]

#: seconds between two progress lines: on a terminal, and into a log (stderr not a terminal)
EVERY_TTY_S = 5.0
EVERY_LOG_S = 60.0


def silent(_: str) -> None:
    """The default ``Log``: says nothing."""


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _duration(s: float) -> str:
    s = max(int(round(s)), 0)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class Meter:
    """Progress of a long pass over input files: ``what`` done, their rate, the bytes read of
    ``total_bytes`` (``progress.bytes``: any object with a ``bytes`` count) and an ETA from
    them, as one line through ``log`` at most every ``every`` seconds (default: every 5 s on
    a terminal, every minute otherwise, so a night's build leaves a readable log)."""

    def __init__(
        self,
        log: Log,
        what: str,
        *,
        total_bytes: int | None = None,
        progress: Any = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.what, self.total, self.progress, self.clock = log, what, total_bytes, progress, clock
        self.every = every if every is not None else (EVERY_TTY_S if sys.stderr.isatty() else EVERY_LOG_S)
        self.t0 = self.last = clock()

    def line(self, items: int, extra: str = "") -> str:
        """The progress line for ``items`` done so far."""
        dt = max(self.clock() - self.t0, 1e-9)
        out = f"{items:,} {self.what} ({items / dt:,.1f}/s)"
        done = None if self.progress is None else int(self.progress.bytes)
        if done is not None and self.total:
            out += f", {_size(done)} of {_size(self.total)} read"
            if 0 < done < self.total:
                out += f", ETA {_duration(dt * (self.total - done) / done)}"
        return out + (f", {extra}" if extra else "") + f", {_duration(dt)} so far"

    def tick(self, items: int, extra: str = "") -> None:
        """Log the line when ``every`` seconds have passed since the last one."""
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.log(self.line(items, extra))


__all__ = ["Log", "Meter", "silent"]
