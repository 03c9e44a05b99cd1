"""Progress lines: the ``log`` callback that long training-time steps take (the CLI passes one
that prints to stderr; the default says nothing)."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


def silent(_: str) -> None:
    """The default ``Log``: says nothing."""


__all__ = ["Log", "silent"]
