"""Documents as the library takes them (a string, a canonical-JSONL dict or a ``Document``),
their given mention spans, and the error record of a document that cannot be linked."""

from __future__ import annotations

from typing import Any

from xned.errors import InputError, XnedError
from xned.langs import normalize_lang
from xned.types import DocResult, Document, Mention

MentionLike = Mention | tuple[int, int] | dict[str, Any]


def as_mention(m: MentionLike, text: str) -> Mention:
    s: Any
    e: Any
    if isinstance(m, Mention):
        s, e = m.start, m.end
    elif isinstance(m, dict):
        s, e = m.get("start"), m.get("end")
    elif isinstance(m, (tuple, list)) and len(m) == 2:
        s, e = m
    else:
        raise InputError(f"Mention {str(m)[:80]!r} must be a (start, end) pair or an object with start and end.")
    if not isinstance(s, int) or not isinstance(e, int) or isinstance(s, bool) or isinstance(e, bool):
        raise InputError(f"Mention span ({s!r}, {e!r}) must be two integers (character offsets).")
    if not 0 <= s < e <= len(text):
        raise InputError(
            f"Mention span [{s}, {e}) is out of range for a text of {len(text)} characters; "
            f"spans are character offsets with 0 <= start < end <= len(text)."
        )
    return Mention(s, e, text[s:e])


def as_document(doc: Document | str | dict[str, Any], lang: str | None = None) -> Document:
    """Accepts a ``Document``, a plain string, or a canonical-JSONL dict."""
    if isinstance(doc, Document):
        return Document(doc.text, normalize_lang(doc.lang or lang), doc.id, doc.mentions)
    if isinstance(doc, str):
        return Document(text=doc, lang=normalize_lang(lang))
    if isinstance(doc, dict):
        ments = doc.get("mentions")
        if ments is not None and not isinstance(ments, (list, tuple)):
            raise InputError(f'"mentions" must be a list of spans (got {type(ments).__name__}).')
        return Document(
            text=doc.get("text"),  # type: ignore[arg-type]  # validated in _prepare
            lang=normalize_lang(doc.get("lang") or lang),
            id=None if doc.get("id") is None else str(doc.get("id")),
            mentions=None if ments is None else tuple(ments),
        )
    raise InputError(f"Cannot link a {type(doc).__name__}: pass a string, a dict or a Document.")


def check_text(text: object, max_chars: int) -> None:
    """``InputError`` unless ``text`` is a non-empty string of valid Unicode within the limit."""
    if not isinstance(text, str):
        raise InputError(f"Document text must be a string (got {type(text).__name__}).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"Document text holds a lone surrogate ({text[exc.start]!r} at character {exc.start}); "
            f"it is not valid Unicode text: fix the encoding of the input."
        ) from None
    if not text.strip():
        raise InputError("Empty text: nothing to link. Pass a non-empty document.")
    if len(text) > max_chars:
        raise InputError(
            f"Document of {len(text):,} characters is over the limit of {max_chars:,}; split it into "
            f"smaller documents (or raise the limit with --max-chars / XNED_MAX_DOC_CHARS)."
        )


def error_result(raw: Any, lang: str | None, exc: BaseException, line: int | None = None) -> DocResult:
    """The record of a document that failed: its own id, language and text where they are
    usable, and the error message (library errors as they are, anything else named)."""
    get = raw.get if isinstance(raw, dict) else (lambda k, d=None: getattr(raw, k, d))
    doc_id = get("id", None)
    doc_lang = get("lang", lang)
    text = raw if isinstance(raw, str) else get("text", "")
    line = line if line is not None else get("line", None)
    msg = str(exc) if isinstance(exc, XnedError) else f"unexpected {type(exc).__name__}: {exc}"
    return DocResult(
        None if doc_id is None else _valid(str(doc_id)),
        _valid(doc_lang) if isinstance(doc_lang, str) else None,
        _valid(text) if isinstance(text, str) else "",
        error=_valid(msg),
        line=line if isinstance(line, int) else None,
    )


def _valid(s: str) -> str:
    """``s`` with lone surrogates replaced (one character each, so offsets hold), so that an
    error record can always be written as UTF-8."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")
