"""Errors raised by xned. The CLI turns them into ``Error: ...`` and exit code 1."""


class XnedError(Exception):
    """Base class: every message says what failed, the value, and how to fix it."""


class BundleError(XnedError):
    """A bundle is missing, incomplete, corrupted or of an unsupported version."""


class InputError(XnedError):
    """User input (text, spans, language codes, files) is invalid."""


class KBBuildError(XnedError):
    """A knowledge-base source could not be read or is inconsistent."""


class ExportError(XnedError):
    """Exporting or validating an encoder failed."""
