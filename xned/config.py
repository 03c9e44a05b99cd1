"""Defaults and environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

#: Documents longer than this (characters) are refused with an error; split them first.
MAX_DOC_CHARS = int(os.environ.get("XNED_MAX_DOC_CHARS", "1000000"))

# The longest line each kind of input file may have (a longer one is an error of that line,
# read no further than the limit): bounded reads of untrusted files.
#: a canonical JSONL document (``xned link``, ``xned eval``, training and teaching files)
MAX_DOCUMENT_LINE_BYTES = 64 * 1024 * 1024
#: a KB source line (entity TSV/JSONL, alias counts)
MAX_SOURCE_LINE_BYTES = 4 * 1024 * 1024
#: a title<TAB>QID map row (characters)
MAX_TITLE_LINE_CHARS = 4096
#: a line of a vocabulary-pruning text file (characters; the rest is not read)
MAX_WORDLIST_LINE_CHARS = 2000


def default_bundle_path() -> Path:
    """``$XNED_BUNDLE`` if set, else the bundle embedded in the package."""
    env = os.environ.get("XNED_BUNDLE")
    if env:
        return Path(env).expanduser()
    return Path(__file__).parent / "assets" / "default"
