"""JSON from untrusted input, read one way everywhere: a document line, a request body, a
corrections record, a bundle file. ``json.loads`` raises ``RecursionError`` (not a
``JSONDecodeError``) on input nested deeper than the interpreter's stack allows, which would
escape every ``except JSONDecodeError`` and abort a whole batch; here every way a text can
fail to be JSON is one ``JSONError`` whose message says why."""

from __future__ import annotations

import json
from typing import Any


class JSONError(ValueError):
    """The text is not JSON that can be read; the message says why (no position prefix)."""


def loads(data: str | bytes) -> Any:
    """``json.loads`` with every failure as ``JSONError``: malformed JSON (the reason and its
    column), undecodable bytes, or nesting too deep to read."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JSONError(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise JSONError(f"not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise JSONError("arrays or objects nested too deeply to read") from None
