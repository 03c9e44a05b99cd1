"""Defaults and environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

#: Documents longer than this (characters) are refused with an error; split them first.
MAX_DOC_CHARS = int(os.environ.get("XNED_MAX_DOC_CHARS", "1000000"))


def default_bundle_path() -> Path:
    """``$XNED_BUNDLE`` if set, else the bundle embedded in the package."""
    env = os.environ.get("XNED_BUNDLE")
    if env:
        return Path(env).expanduser()
    return Path(__file__).parent / "assets" / "default"
