"""``xned serve``: the HTTP API and the analysts' web page, on Starlette.

Starlette (+ uvicorn to run it) is the smallest well-kept ASGI stack that gives routing,
request limits and a test client without a schema framework; FastAPI would add pydantic
(+0.5 s start-up, measured for typer) for the handful of fields validated here anyway.

Endpoints: ``GET /`` (the page), ``GET /health``, ``GET /info``, ``POST /link``,
``POST /teach``, ``POST /nil/merge``, ``POST /nil/promote``, ``GET /openapi.json``.
``POST /teach`` takes ``{"text", "lang"?, "start", "end", "qid"}`` (``qid`` null: not an
entity of the KB) or ``{"documents": [...]}`` whose mentions carry ``qid``, stores the
corrections (``Linker.teach``) and returns them; every later ``/link`` of any worker uses
them. ``POST /link`` takes ``{"text", "lang"?, "mentions"?, "candidates"?}`` or
``{"documents": [canonical documents], "lang"?, "candidates"?}`` and
returns ``{"documents": [...]}`` in the canonical shape of ``xned link -f jsonl``; a document
that cannot be linked carries ``error`` (status 200: the others are fine), a request that is
wrong as a whole gets ``{"error": ...}`` with a 4xx status. The bundle is loaded once per
process; linking runs in a thread (ONNX Runtime releases the GIL) under a concurrency limit
and a timeout.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from xned import jsonio
from xned.errors import InputError, XnedError
from xned.records import doc_record
from xned.serve.openapi import OPENAPI
from xned.types import DocResult

if TYPE_CHECKING:
    from xned.engine.linker import Linker
    from xned.engine.nil import NilStore

log = logging.getLogger("xned.serve")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 2_000_000
    max_documents: int = 100
    max_doc_chars: int = 100_000
    concurrency: int = 4
    timeout_s: float = 60.0


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _documents(body: Any, limits: Limits) -> tuple[list[dict[str, Any]], str | None, bool, bool]:
    """The request's documents, default language, ``candidates`` flag and whether it was the
    one-text form; or RequestError."""
    if not isinstance(body, dict):
        raise RequestError(422, 'The body must be a JSON object: {"text": ...} or {"documents": [...]}.')
    lang = body.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise RequestError(422, f'"lang" must be a language code string (got {type(lang).__name__}).')
    cands = body.get("candidates", False)
    if not isinstance(cands, bool):
        raise RequestError(422, '"candidates" must be true or false.')
    if "documents" in body:
        docs = body["documents"]
        if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
            raise RequestError(422, '"documents" must be a list of objects with "text" (and "lang", "mentions").')
    elif "text" in body:
        docs = [{k: body[k] for k in ("id", "text", "lang", "mentions") if k in body}]
    else:
        raise RequestError(422, 'Give "text" (one document) or "documents" (a list).')
    if len(docs) > limits.max_documents:
        raise RequestError(413, f"{len(docs)} documents in one request; at most {limits.max_documents}.")
    for d in docs:
        text = d.get("text")
        if isinstance(text, str) and len(text) > limits.max_doc_chars:
            raise RequestError(
                413, f"A document of {len(text):,} characters; this server takes at most {limits.max_doc_chars:,}."
            )
    return docs, lang, cands, "documents" not in body


def create_app(linker: Linker, *, token: str | None = None, limits: Limits | None = None) -> Starlette:
    """The ASGI app around a loaded ``Linker``. With ``token`` every request except ``GET
    /health`` and ``GET /`` needs ``Authorization: Bearer <token>``. The page itself is public:
    it is static (no data, no bundle details) and asks for the token before anything else;
    the OpenAPI schema, the bundle's info, linking and teaching need the token."""
    api = Api(linker, token, limits or Limits())
    return Starlette(
        routes=[
            Route("/", api.index),
            Route("/health", api.health),
            Route("/info", api.info),
            Route("/openapi.json", api.openapi),
            Route("/link", api.link, methods=["POST"]),
            Route("/teach", api.teach, methods=["POST"]),
            Route("/nil/merge", api.nil_merge, methods=["POST"]),
            Route("/nil/promote", api.nil_promote, methods=["POST"]),
        ]
    )


async def read_json(request: Request, limits: Limits) -> Any:
    """The request body as JSON (bounded read, whatever Content-Length said), or RequestError."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
        raise RequestError(413, f"Request body of {int(size):,} bytes; at most {limits.max_body_bytes:,}.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limits.max_body_bytes:
            raise RequestError(413, f"Request body over {limits.max_body_bytes:,} bytes.")
    try:
        return jsonio.loads(raw)
    except jsonio.JSONError as exc:
        raise RequestError(400, f"The body is not valid JSON ({exc}).") from None


class Api:
    """The request handlers of one server process around its loaded linker; ``gate`` bounds
    the requests being linked or taught at once (``Limits.concurrency``)."""

    def __init__(self, linker: Linker, token: str | None, limits: Limits):
        self._linker = linker
        self._reloading = threading.Lock()
        self.token = token
        self.limits = limits
        self.gate = asyncio.Semaphore(limits.concurrency)
        self.page = resources.files("xned.serve").joinpath("static", "index.html").read_text(encoding="utf-8")
        root = Path(getattr(linker, "root", ".") or ".")
        self.root_name = root.name
        self.hidden = sorted({str(root), str(root.absolute()), str(root.resolve())}, key=len, reverse=True)

    @property
    def linker(self) -> Linker:
        """The loaded linker, loaded anew first when the bundle changed on disk (``xned kb
        add``, ``xned nil promote``, ``POST /nil/promote`` of this or another worker), so
        every worker links with the bundle as it is now. A bundle that fails to load keeps
        the one loaded before (the error is in the server log)."""
        from xned.engine.bundle import bundle_stamp

        current = self._linker
        root = getattr(current, "root", None)  # a stand-in linker (tests) has no bundle
        now = None if root is None else bundle_stamp(root)
        if now is None or now == getattr(current, "stamp", now):
            return current
        with self._reloading:
            if self._linker is current:  # no other thread reloaded meanwhile
                try:
                    self._linker = current.reload()
                except XnedError as exc:
                    current.stamp = now  # do not retry on every request
                    log.warning("xned serve: the changed bundle did not load (%s); linking with the one before", exc)
            return self._linker

    async def _current(self) -> Linker:
        """``linker`` from a worker thread: loading a changed bundle must not hold up the
        event loop (the other requests)."""
        return await run_in_threadpool(lambda: self.linker)

    def public(self, message: str) -> str:
        """An error message without the server's file-system paths (the bundle is named)."""
        for path in self.hidden:
            if path not in (".", ""):
                message = message.replace(path, f"<bundle {self.root_name}>")
        return message

    def refused(self, request: Request) -> Response | None:
        """The 401 response when a token is set and the request does not carry it."""
        given = request.headers.get("authorization", "")
        if self.token is None or hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return None
        return _error(401, "Missing or wrong token: send Authorization: Bearer <token>.")

    async def index(self, request: Request) -> Response:
        return HTMLResponse(self.page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(self, request: Request) -> Response:
        if (no := self.refused(request)) is not None:
            return no
        summary = (await self._current()).info()
        keep = ("name", "languages", "entities", "experts", "scoring", "dense_index")
        return JSONResponse({k: summary.get(k) for k in keep} | {"limits": self.limits.__dict__})

    async def openapi(self, request: Request) -> Response:
        if (no := self.refused(request)) is not None:
            return no
        return JSONResponse(OPENAPI)

    async def link(self, request: Request) -> Response:
        if (no := self.refused(request)) is not None:
            return no
        try:
            docs, lang, cands, single = _documents(await read_json(request, self.limits), self.limits)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        if self.gate.locked():
            return _error(503, f"Busy: {self.limits.concurrency} requests are being linked; retry shortly.")
        try:
            results = await self._bounded(docs, lang, cands)
        except asyncio.TimeoutError:
            return _error(504, f"Linking took longer than {self.limits.timeout_s:g} s; send smaller requests.")
        except (InputError, XnedError) as exc:
            return _error(400, self.public(str(exc)))
        results = [r if r.error is None else replace(r, error=self.public(r.error)) for r in results]
        if single and results[0].error is not None:  # the one text is the whole request
            return _error(400, results[0].error)
        return JSONResponse({"documents": [doc_record(r, cands) for r in results]})

    async def _bounded(self, docs: list[dict[str, Any]], lang: str | None, cands: bool) -> list[DocResult]:
        """Link ``docs`` in a worker thread within the request timeout; on timeout the thread
        stops after its current chunk of documents and TimeoutError is raised."""
        cancel = threading.Event()

        def work() -> list[DocResult]:
            # a few documents at a time, so a timed-out request stops within one chunk
            out = []
            for res in self.linker.link_stream(docs, lang=lang, candidates=cands, chunk_size=CHUNK_DOCS):
                if cancel.is_set():
                    break
                out.append(res)
            return out

        async with self.gate:  # held until the thread is done: --concurrency bounds the work, not the waiting
            task = asyncio.ensure_future(run_in_threadpool(work))
            try:
                return await asyncio.wait_for(asyncio.shield(task), timeout=self.limits.timeout_s)
            except asyncio.TimeoutError:
                cancel.set()
                await asyncio.gather(task, return_exceptions=True)
                raise

    async def _nil_request(self, request: Request) -> Response | tuple[NilStore, Any, Linker]:
        """A NIL request's store, JSON body and linker, or the response refusing it."""
        if (no := self.refused(request)) is not None:
            return no
        linker = await self._current()
        if linker.nil is None:
            return _error(409, "This server gives no NIL identities; start it with xned serve --nil-ids.")
        try:
            return linker.nil, await read_json(request, self.limits), linker
        except RequestError as exc:
            return _error(exc.status, exc.message)

    async def nil_merge(self, request: Request) -> Response:
        """Merge two NIL clusters: ``{"keep": "NIL:...", "other": "NIL:..."}`` (serve --nil-ids)."""
        got = await self._nil_request(request)
        if isinstance(got, Response):
            return got
        store, body, _ = got
        keep, other = (body.get(k) if isinstance(body, dict) else None for k in ("keep", "other"))
        if not isinstance(keep, str) or not isinstance(other, str):
            return _error(422, 'Give "keep" and "other": the ids of two NIL clusters (NIL:...).')
        async with self.gate:
            try:
                kept = await run_in_threadpool(lambda: store.merge(keep, other))
            except KeyError as exc:
                return _error(404, f"No NIL cluster {str(exc.args[0])[:40]}.")
        return JSONResponse({"nil_id": kept, "merged": other})

    async def nil_promote(self, request: Request) -> Response:
        """Make a NIL cluster an entity of the bundle: ``{"nil_id": "NIL:...", "label": ...,
        "description"?, "type"?}`` (serve --nil-ids; ``xned nil promote``). Later links, of
        every worker, link its names to the new local QID."""
        req = await self._nil_request(request)
        if isinstance(req, Response):
            return req
        store, body, linker = req
        got = body if isinstance(body, dict) else {}
        nil_id, label = got.get("nil_id"), got.get("label")
        description, type_name = got.get("description") or "", got.get("type") or ""
        if not (isinstance(nil_id, str) and isinstance(label, str)):
            return _error(422, 'Give "nil_id" (NIL:...) and "label" (its name); "description", "type" optional.')
        if not (isinstance(description, str) and isinstance(type_name, str)):
            return _error(422, '"description" and "type" are text.')
        cid, name = nil_id, label  # narrowed to str for the closure
        from xned.export.kb.promote import promote

        async with self.gate:
            try:
                done = await run_in_threadpool(
                    lambda: promote(
                        linker.root,
                        store,
                        cid,
                        name,
                        description=description,
                        type_name=type_name,
                    )
                )
            except (InputError, XnedError) as exc:
                return _error(400, self.public(str(exc)))
            await self._current()  # load the changed bundle now, not in the next request
        return JSONResponse(done)

    async def teach(self, request: Request) -> Response:
        if (no := self.refused(request)) is not None:
            return no
        try:
            body = await read_json(request, self.limits)
            if isinstance(body, dict) and "text" in body and "mentions" not in body:
                span = {k: body.get(k) for k in ("start", "end", "qid")}
                body = {**body, "mentions": [span]}
            docs, lang, _, _ = _documents(body, self.limits)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        docs = [d if d.get("lang") or not lang else {**d, "lang": lang} for d in docs]
        async with self.gate:
            try:
                taught = await run_in_threadpool(lambda: self.linker.teach_batch(docs))
            except (InputError, XnedError) as exc:
                return _error(400, self.public(str(exc)))
        rows = [{"id": e.id, "mention": e.mention, "key": e.key, "qid": e.qid, "lang": e.lang} for e in taught]
        return JSONResponse({"taught": rows, "corrections": len(self._linker.corrections or ())})


#: The page loads nothing from elsewhere; links to Wikidata are plain navigation; no other
#: site may frame it (clickjacking of the "correct" action).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)

#: documents linked per step of a request; a timed-out request stops after the current step
CHUNK_DOCS = 8
