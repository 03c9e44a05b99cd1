"""Sharded KB builds: the KB of ``build_kb``, byte for byte, from sources read in parallel
(worker processes on this machine, or Ray tasks on a cluster: ``xned.integrations.ray``).

Every source (entity TSV/JSONL, alias-count TSV, Wikidata JSON dump, Wikipedia XML dump) is
one shard, and an uncompressed Wikidata dump is cut into byte ranges of ``shard_bytes`` (a
range holds the lines that start in it). A shard is read into its own ``KBBuilder`` whose
sorted run files stay in the build's work directory (on a cluster: a filesystem every node
sees); the driver then merges the runs of every shard as if one builder had read them
(``Spill.adopt``) and writes the KB with the same code as ``build_kb``. Records of one QID
merge in the order (source index, shard start, reading order) and every other stream is
sorted by content, so the merged streams, and the KB, are those of the single-process build
whatever the shard sizes, the parallelism or the order in which shards finish.

Wikipedia dumps resolve their links through the sitelinks of the Wikidata dumps listed
before them: they are read in a second phase, given the title runs of those shards.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xned.errors import KBBuildError
from xned.export.kb.build import finish_build
from xned.export.kb.builder import BuildReport, KBBuilder
from xned.export.kb.options import KBOptions
from xned.export.kb.sources import is_wikipedia, read_source
from xned.export.kb.wikidata import TitleMap
from xned.export.kb.writer import EntityRow
from xned.fsutil import atomic_write_text, inputs_key
from xned.logs import Log, Meter, silent
from xned.records import ReadProgress

SHARD_BYTES = 256 * 1024 * 1024
_WIKIDATA = re.compile(r"\.json(\.gz|\.bz2)?$")


@dataclass(frozen=True)
class ShardTask:
    """One shard to read; plain data, so it travels to a worker process or a Ray task."""

    source: int  # index in the build's source list
    path: str
    start: int = 0  # byte range [start, stop) of an uncompressed Wikidata dump
    stop: int | None = None
    work: str = ""  # directory for this shard's run files
    options: KBOptions = field(default_factory=KBOptions)
    title_runs: tuple[str, ...] = ()  # Wikipedia shards: the sitelink runs of earlier Wikidata shards
    title_total: int = 0


@dataclass
class ShardOutput:
    source: int
    start: int
    records: int
    handed: dict[str, Any]  # the shard builder's runs and report (KBBuilder.hand_over)
    title_runs: list[str]
    title_total: int


Runner = Callable[[list[ShardTask]], list[ShardOutput]]


@dataclass(frozen=True)
class ShardPlan:
    """How a build reads its sources in shards: who reads them (``runner``), where their run
    files go (``work``; None: beside the output; on a cluster, storage every node shares)
    and how many bytes of an uncompressed Wikidata dump one shard holds."""

    runner: Runner
    work: Path | None = None
    shard_bytes: int = SHARD_BYTES
    #: continue the build whose finished shards are in ``work`` (see ``build_sharded``)
    resume: bool = False
    log: Log = silent  # what a resumed build takes over
    #: ``work`` is the build's own folder (not one a user named): removed at the end
    own_work: bool = False


def plan(sources: list[Path], shard_bytes: int = SHARD_BYTES) -> list[tuple[int, Path, int, int | None]]:
    """(source index, path, start, stop) of every shard: uncompressed Wikidata dumps are cut
    into byte ranges, every other source is one shard."""
    out: list[tuple[int, Path, int, int | None]] = []
    for i, path in enumerate(sources):
        name = path.name.lower()
        size = path.stat().st_size
        if name.endswith(".json") and _WIKIDATA.search(name) and size > shard_bytes:
            for start in range(0, size, shard_bytes):
                out.append((i, path, start, min(size, start + shard_bytes)))
        else:
            out.append((i, path, 0, None))
    return out


LOCAL_MIN_SHARD = 16 * 1024 * 1024


def local_shards(sources: Iterable[Path], workers: int) -> ShardPlan | None:
    """How ``xned kb build --workers N`` reads on this machine: every uncompressed Wikidata
    dump cut into 4N byte ranges (at most ``SHARD_BYTES`` each) read by N processes, the
    same KB as one reader. None (one reader, whose decoding ``workers`` processes share)
    where that does not pay: no uncompressed dump of ``LOCAL_MIN_SHARD`` bytes, or a
    compressed dump, which cannot be cut."""
    dumps = [Path(p) for p in sources if _WIKIDATA.search(Path(p).name.lower()) and Path(p).is_file()]
    if any(not p.name.lower().endswith(".json") for p in dumps):
        return None
    size = max((p.stat().st_size for p in dumps), default=0)
    if workers <= 1 or size < LOCAL_MIN_SHARD:
        return None
    # four ranges per worker: a worker that finishes early takes the next one
    return ShardPlan(local_runner(workers), shard_bytes=min(SHARD_BYTES, -(-size // (4 * workers))))


def read_shard(task: ShardTask) -> ShardOutput:
    """Read one shard into a fresh builder; its runs stay in ``task.work``."""

    work = Path(task.work)
    work.mkdir(parents=True, exist_ok=True)
    b = KBBuilder(task.options, tmp_dir=work)
    b.begin_source(task.source, task.start)
    if task.title_runs:
        b.wiki_titles = TitleMap(b.run_records, work)
        b.wiki_titles.records.adopt([Path(p) for p in task.title_runs], task.title_total)
    # the parallelism is across shards
    reader_args = task.options.reading(workers=1)
    if task.stop is not None:
        reader_args["byte_range"] = (task.start, task.stop)
    n = read_source(Path(task.path), b, **reader_args)
    titles = b.wiki_titles if not task.title_runs else None
    out = ShardOutput(
        task.source,
        task.start,
        n,
        b.hand_over(),
        [str(p) for p in titles.records.finish()] if titles is not None else [],
        len(titles.records) if titles is not None else 0,
    )
    b.close()
    # the shard is finished: a resumed build takes this instead of reading it again
    atomic_write_text(work / DONE, json.dumps(asdict(out), sort_keys=True) + "\n")
    return out


DONE = "done.json"  # in a shard's directory once it is read: its ShardOutput
PLAN = "plan.json"  # in the work directory: what build its shards belong to


def _finished(task: ShardTask) -> ShardOutput | None:
    """The output of a shard a killed build had finished (``--resume``), else None."""
    try:
        data = json.loads((Path(task.work) / DONE).read_text(encoding="utf-8"))
        return ShardOutput(**data)
    except (OSError, ValueError, TypeError):
        return None


def _resuming(runner: Runner, log: Log) -> Runner:
    """``runner`` for the shards not finished yet; the finished ones are read from disk."""

    def run(tasks: list[ShardTask]) -> list[ShardOutput]:
        done = {t.work: out for t in tasks if (out := _finished(t)) is not None}
        todo = [t for t in tasks if t.work not in done]
        for t in todo:  # a shard the kill interrupted starts again
            shutil.rmtree(t.work, ignore_errors=True)
        if done:
            log(f"kb build: {len(done)} of {len(tasks)} shards were finished before; reading {len(todo)}")
        fresh = dict(zip([t.work for t in todo], runner(todo), strict=True)) if todo else {}
        return [done.get(t.work) or fresh[t.work] for t in tasks]

    return run


@contextlib.contextmanager
def _watched(tasks: list[ShardTask], log: Log, every: float | None = None) -> Iterator[None]:
    """Progress of a pass over shards, whoever reads them: a thread here counts the finished
    ones (their ``done.json``) and their bytes, and logs a ``Meter`` line now and then."""
    if log is silent or not tasks:
        yield
        return
    size = {t.work: (t.stop if t.stop is not None else Path(t.path).stat().st_size) - t.start for t in tasks}
    read = ReadProgress()
    meter = Meter(log, "shards", total_bytes=sum(size.values()), progress=read, every=every)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(1.0):
            done = [w for w in size if (Path(w) / DONE).is_file()]
            read.bytes = sum(size[w] for w in done)
            meter.tick(len(done), f"of {len(size)}")

    thread = threading.Thread(target=watch, name="xned-shard-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def local_runner(workers: int) -> Runner:
    """Shards read by ``workers`` processes of this machine (in this process when 1)."""

    def run(tasks: list[ShardTask]) -> list[ShardOutput]:
        if workers <= 1 or len(tasks) <= 1:
            return [read_shard(t) for t in tasks]
        # spawn: a forked child inherits the parent's thread pools (ONNX Runtime, usearch)
        # in whatever state they were and can deadlock on their locks
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(read_shard, tasks))

    return run


def build_sharded(
    sources: Iterable[Path],
    dest: Path,
    shards: ShardPlan,
    options: KBOptions | None = None,
    *,
    embed: Callable[[list[EntityRow]], np.ndarray] | None = None,
    bundle: Path | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """``build_kb`` over the shards of ``shards``; the same ``dest`` byte for byte.

    Each shard writes ``done.json`` into its directory when it is read; with
    ``shards.resume``, a build killed before the end continues: the finished shards of the
    same build (``plan.json`` holds its key) are taken as they are and the others read
    again, and the KB is the one an uninterrupted build writes.

    ``shards.work`` holds the shards' run files (default: a directory beside the output; on
    a cluster, a directory every node can read and write); it is removed at the end."""

    options = options or KBOptions()
    sources = [Path(s) for s in sources]
    work = shards.work
    own_work = work is None or shards.own_work
    if work is None:  # beside the output, not in $TMPDIR: a killed build's runs go with the next build
        work = Path(dest).absolute().parent / f".{Path(dest).name}.shards"
    work = Path(work)
    key = inputs_key(sources, [options.recipe("-"), shards.shard_bytes])  # what the finished shards belong to
    if shards.resume and (work / PLAN).is_file():
        if json.loads((work / PLAN).read_text(encoding="utf-8")).get("key") != key:
            raise KBBuildError(
                f"The finished shards in {work} belong to another build (other sources or options); "
                f"run without --resume to start over."
            )
    else:
        (work / PLAN).unlink(missing_ok=True)
        for old in work.glob("shard*"):
            shutil.rmtree(old, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / PLAN, json.dumps({"key": key}) + "\n")
    runner = _resuming(shards.runner, shards.log)
    cuts = plan(sources, shards.shard_bytes)
    try:

        def task(k: int, src: int, path: Path, start: int, stop: int | None, **kw: Any) -> ShardTask:
            # a Wikidata dump's sitelinks only serve the Wikipedia dumps read after it
            later = any(is_wikipedia(s) for s in sources[src + 1 :])
            opts = options.with_reader(sitelinks=later)
            return ShardTask(src, str(path), start, stop, str(work / f"shard{k:05d}"), opts, **kw)

        first = [task(k, *s) for k, s in enumerate(cuts) if not is_wikipedia(s[1])]
        with _watched(first, shards.log):
            outputs = runner(first)
        second = []
        for k, (src, path, start, stop) in enumerate(cuts):
            if is_wikipedia(path):
                earlier = [o for o in outputs if o.source < src and o.title_runs]
                runs = tuple(r for o in earlier for r in o.title_runs)
                second.append(
                    task(k, src, path, start, stop, title_runs=runs, title_total=sum(o.title_total for o in earlier))
                )
        outputs = sorted([*outputs, *runner(second)], key=lambda o: (o.source, o.start))
        b = KBBuilder(options, tmp_dir=work)
        records = [0] * len(sources)
        for o in outputs:
            b.adopt(o.handed)
            records[o.source] += o.records
        if b.wiki_langs:  # the sitelinks again, for the titles written beside the KB
            sitelinks = [o for o in outputs if not is_wikipedia(sources[o.source])]
            b.wiki_titles = TitleMap(b.run_records, work)
            b.wiki_titles.records.adopt(
                [Path(r) for o in sitelinks for r in o.title_runs], sum(o.title_total for o in sitelinks)
            )
        b.report.sources = [{"path": s.name, "records": n} for s, n in zip(sources, records, strict=True)]
        result = finish_build(b, sources, dest, embed, bundle)
    except Exception:
        # the build failed (bad input, a full disk): nothing to resume. An interrupt or a
        # kill leaves the finished shards for --resume
        _clear(work, own_work, len(cuts))
        raise
    _clear(work, own_work, len(cuts))
    return result


def _clear(work: Path, own_work: bool, n_shards: int) -> None:
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
        return
    for k in range(n_shards):
        shutil.rmtree(work / f"shard{k:05d}", ignore_errors=True)
    (work / PLAN).unlink(missing_ok=True)


__all__ = [
    "ShardOutput",
    "ShardPlan",
    "ShardTask",
    "build_sharded",
    "local_runner",
    "local_shards",
    "plan",
    "read_shard",
]
