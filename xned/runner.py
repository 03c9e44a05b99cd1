"""Linking a stream of documents in this process or in a pool of worker processes.

The unit of work is ``link_records(batch)``: a plain function over a list of input records
(canonical dicts, or pre-errored ``DocResult``) returning one ``DocResult`` per record, in
order, using the process's ``Linker`` (loaded once per process by ``init_worker``). The
process pool, the benchmark and distributed engines (Ray actors) all call it the same way.

``link_stream`` keeps at most ``2 * workers`` batches in flight, so memory stays bounded
whatever the input size, and yields results in input order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xned import config
from xned.engine.session import device_providers
from xned.types import DocResult

if TYPE_CHECKING:
    from xned.engine.linker import Linker


@dataclass(frozen=True)
class LinkOptions:
    """Everything a worker needs to load the same ``Linker`` and link the same way."""

    bundle: str | None = None
    lang: str | None = None
    given_spans: bool = False
    candidates: bool = False
    top_k: int = 30
    threshold: float | None = None
    variant: str = "fused"
    max_chars: int = config.MAX_DOC_CHARS
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers (None: those of ``device``)
    device: str = "cpu"  # cpu, cuda, openvino, coreml, directml or auto (``engine.session.DEVICES``)
    threads: int | None = None
    verify: bool = False
    use_corrections: bool = True
    state: str | None = None  # corrections state directory (None: $XNED_STATE or the user data directory)
    detection: str = "auto"  # model, rules or auto (see Linker.load)
    nil_ids: bool = False  # a local identity for every NIL mention (xned.engine.nil)

    def load(self) -> Linker:
        from xned.engine.linker import Linker

        return Linker.load(
            None if self.bundle is None else Path(self.bundle),
            providers=list(self.providers) if self.providers else device_providers(self.device),
            threads=self.threads,
            verify=self.verify,
            variant=self.variant,
            top_k=self.top_k,
            threshold=self.threshold,
            max_chars=self.max_chars,
            use_corrections=self.use_corrections,
            state=self.state,
            detection=self.detection,
            nil_ids=self.nil_ids,
            prefetch=True,  # whoever links a stream will encode: the session loads meanwhile
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_STATE: dict[str, Any] = {}


def init_worker(opts: LinkOptions, linker: Linker | None = None) -> None:
    """Load the process's ``Linker`` (or adopt ``linker``) for ``link_records``."""
    _STATE["opts"] = opts
    _STATE["linker"] = linker if linker is not None else opts.load()


def _die_with(parent: int) -> None:
    """End this worker as soon as ``parent`` is gone (killed with -9 included): on Linux the
    kernel signals it (``PR_SET_PDEATHSIG``); everywhere a daemon thread notices that the
    parent changed within a second. Without it, a killed ``xned link --workers N`` left N
    processes of a few hundred MB running."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(0.5)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before this worker started
        os._exit(1)
    threading.Thread(target=watch, name="xned-parent-watch", daemon=True).start()


def _init_pool_worker(opts: LinkOptions, parent: int) -> None:
    _die_with(parent)
    # Ctrl-C reaches the whole process group: the parent handles it (keeps the partial
    # output, stops the pool); a worker interrupted mid-batch would only print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(opts)


def link_records(batch: list[dict[str, Any] | DocResult]) -> list[DocResult]:
    """One ``DocResult`` per record, in order, with this process's ``Linker``."""
    opts: LinkOptions = _STATE["opts"]
    linker = _STATE["linker"]
    return list(
        linker.link_stream(
            batch,
            lang=opts.lang,
            given_spans=opts.given_spans,
            candidates=opts.candidates,
            chunk_size=max(1, len(batch)),
        )
    )


def _batches(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def link_stream(
    records: Iterable[dict[str, Any] | DocResult],
    opts: LinkOptions,
    *,
    workers: int = 1,
    batch_size: int = 32,
    linker: Linker | None = None,
) -> Iterator[DocResult]:
    """Link ``records`` in order: in this process (``workers=1``, reusing ``linker`` if
    given) or in ``workers`` processes with one ONNX Runtime thread each."""
    if workers <= 1:
        init_worker(opts, linker)
        for batch in _batches(records, batch_size):
            yield from link_records(batch)
        return
    worker_opts = LinkOptions(**{**opts.as_dict(), "threads": 1})
    # spawn: workers start clean (no inherited threads or ONNX sessions); each maps the
    # bundle itself, so the arrays are shared through the page cache.
    ctx = multiprocessing.get_context("spawn")
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_pool_worker, initargs=(worker_opts, os.getpid())
    )
    done = False
    try:
        pending: deque[Future[list[DocResult]]] = deque()
        for batch in _batches(records, batch_size):
            pending.append(pool.submit(link_records, batch))
            while len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
        done = True
    finally:
        if done:
            pool.shutdown(wait=True)
        else:  # interrupted (Ctrl-C, SIGTERM, an error, the consumer stopped): stop the workers now
            procs = list((getattr(pool, "_processes", None) or {}).values())  # (no public handle on them)
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=5)
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
