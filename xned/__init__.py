"""xned: offline zero-shot cross-lingual named entity linking to Wikidata.

Importing this package is cheap: onnxruntime and the bundle load only when a
``Linker`` is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Candidate", "Link", "Linker", "Mention", "XnedError", "__version__"]

if TYPE_CHECKING:
    from xned.engine.linker import Linker
    from xned.errors import XnedError
    from xned.types import Candidate, Link, Mention


def __getattr__(name: str) -> Any:
    if name == "Linker":
        from xned.engine.linker import Linker

        return Linker
    if name in ("Link", "Mention", "Candidate"):
        from xned import types

        return getattr(types, name)
    if name == "XnedError":
        from xned.errors import XnedError

        return XnedError
    raise AttributeError(f"module 'xned' has no attribute {name!r}")
