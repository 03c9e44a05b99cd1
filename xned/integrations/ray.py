"""Batch linking on Ray Data (extra ``xned[ray]``).

``link_dataset(ds, bundle=...)`` maps a dataset of canonical documents (columns ``text`` and
optionally ``id``, ``lang``, ``mentions``) through a pool of actors. Each actor loads the
bundle once (memory-mapped: actors on one node share it through the page cache) and calls
the same unit of work as ``xned link --workers`` (``xned.runner.link_records``), so the rows
are linked exactly as on one machine. One output row per input row, with an explicit Arrow
schema: ``id``, ``lang``, ``text``, ``mentions`` (the records of ``xned link -f jsonl``) and
``error`` (null, or why this row could not be linked). An actor that dies is restarted and
its batch retried by Ray, so a crash loses and duplicates nothing.

Rows come out in Ray's execution order unless the dataset context preserves order (``xned
link --engine ray`` sets ``preserve_order``, so its output is in input order); match rows by
``id``. ``xned link --engine ray -i IN -o OUT_DIR`` runs it on JSONL or Parquet
files/directories (Parquet output when ``OUT_DIR`` ends in ``.parquet``).

``RayEncoding`` encodes the training contexts of ``xned experts train --engine ray`` on
encoder actors, and ``ray_fit_map`` fits its models as tasks (the same experts as the local
run).

``kb_runner()`` reads the shards of a KB build as Ray tasks (``xned kb build --engine ray``,
``xned.export.kb.shards``): one task per source or dump byte range, retried when a node
dies; the driver merges their sorted runs into the KB of the single-process build.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from xned.errors import InputError
from xned.export.experts.fit import fit_models
from xned.export.kb.shards import read_shard
from xned.records import doc_record
from xned.runner import LinkOptions, init_worker, link_records

_CANDIDATE = pa.struct(
    [
        ("qid", pa.string()),
        ("label", pa.string()),
        ("score", pa.float64()),
        ("prior", pa.float64()),
        ("similarity", pa.float64()),
        ("expert", pa.float64()),
    ]
)
_MENTION_FIELDS = [
    ("start", pa.int64()),
    ("end", pa.int64()),
    ("text", pa.string()),
    ("qid", pa.string()),
    ("label", pa.string()),
    ("description", pa.string()),
    ("score", pa.float64()),
    ("prior", pa.float64()),
    ("corrected", pa.bool_()),  # null unless an analyst's correction decided the link
    ("nil_id", pa.string()),  # null unless LinkOptions.nil_ids and the mention is NIL
]


def output_schema(candidates: bool) -> pa.Schema:
    fields = _MENTION_FIELDS + ([("candidates", pa.list_(_CANDIDATE))] if candidates else [])
    return pa.schema(
        [
            ("id", pa.string()),
            ("lang", pa.string()),
            ("text", pa.string()),
            ("mentions", pa.list_(pa.struct(fields))),
            ("error", pa.string()),
        ]
    )


def _as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A dataset row as the canonical document ``link_records`` takes (numpy/Arrow values
    turned into plain Python; a malformed row is left for the linker to reject)."""
    rec = {k: row.get(k) for k in ("id", "text", "lang", "mentions") if row.get(k) is not None}
    if "id" in rec:
        rec["id"] = str(rec["id"])
    ments = rec.get("mentions")
    if isinstance(ments, str):  # mentions serialized as JSON in a flat table
        with contextlib.suppress(json.JSONDecodeError):  # else the linker rejects it
            rec["mentions"] = json.loads(ments)
    return rec


def _connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (None: start or reuse a local one), once."""
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)


class LinkActor:
    """One Ray actor: loads the bundle once, links batches (Arrow tables) of documents."""

    def __init__(self, opts: dict[str, Any]):
        self.opts = LinkOptions(**opts)
        init_worker(self.opts)
        self.schema = output_schema(self.opts.candidates)

    def __call__(self, batch: pa.Table) -> pa.Table:
        results = link_records([_as_record(r) for r in batch.to_pylist()])
        rows = []
        for res in results:
            rec = doc_record(res, self.opts.candidates)
            rec.setdefault("error", None)
            rec.pop("line", None)
            rows.append(rec)
        return pa.Table.from_pylist(rows, schema=self.schema)


def link_dataset(
    ds: ray.data.Dataset,
    options: LinkOptions | None = None,
    *,
    actors: int = 2,
    batch_size: int = 32,
    **fields: Any,
) -> ray.data.Dataset:
    """Link every row of ``ds`` on an actor pool of ``actors`` (one CPU each) as ``options``
    say, or as the ``LinkOptions`` fields ``fields`` say (``bundle``, ``lang``,
    ``given_spans``, ``candidates``, ``top_k``, ``threshold``, ``variant`` ...; ``threads``
    defaults to 1 ONNX Runtime thread per actor)."""
    if options is None:
        bundle = fields.pop("bundle", None)
        options = LinkOptions(bundle=None if bundle is None else str(bundle), **{"threads": 1, **fields})
    elif fields:
        raise TypeError(f"link_dataset: pass LinkOptions or its fields, not both ({', '.join(fields)})")
    options.load()  # a bad bundle fails here, on the driver, not in every actor
    return ds.map_batches(
        LinkActor,
        fn_constructor_kwargs={"opts": options.as_dict()},
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=actors,
        num_cpus=1,
        max_restarts=-1,  # a dead actor is replaced ...
        max_task_retries=-1,  # ... and its batch runs again
    )


def read_documents(path: Path) -> ray.data.Dataset:
    """JSONL or Parquet files (a file or a directory of them)."""
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    names = [f for f in files if f.is_file() and not f.name.startswith(".")]
    if not names:
        raise InputError(f"No input files in {path}.")
    if all(f.suffix == ".parquet" for f in names):
        return ray.data.read_parquet([str(f) for f in names])
    return ray.data.read_json([str(f) for f in names], lines=True)


def run_link(
    input: Path,
    output: Path,
    options: LinkOptions,
    *,
    address: str | None,
    out_format: str = "jsonl",
    actors: int = 2,
) -> int:
    """``xned link --engine ray``: link ``input`` into the directory ``output`` as ``options``
    say (one ONNX Runtime thread per actor unless they set ``threads``); the number of rows
    with an error."""

    if output.exists() and any(output.iterdir()):
        raise InputError(f"{output} is not empty; the Ray engine writes a directory of files there.")
    _connect(address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # rows out in input order
    # read first: an actor pool as large as the cluster would leave no CPU to the read tasks
    # (the object store spills to disk when the input is larger than memory)
    docs = read_documents(input).materialize()
    if options.threads is None:
        options = replace(options, threads=1)
    out = link_dataset(docs, options, actors=actors).materialize()
    if out_format == "parquet":
        out.write_parquet(str(output))
    else:
        out.write_json(str(output), lines=True, force_ascii=False)
    return int(out.filter(lambda row: row["error"] is not None).count())


class EncoderActor:
    """A bundle's encoder in a Ray worker (loaded once; the model file is memory-mapped, so
    actors on one node share it through the page cache)."""

    def __init__(self, encoder_dir: str, threads: int):
        from xned.engine.encoder import Encoder

        self.encoder = Encoder(Path(encoder_dir), threads=threads)

    def embed(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[Any]:
        return [np.asarray(v) for v in self.encoder.embed_mentions(texts, spans)]


class RayEncoding:
    """``experts.contexts.Encoding`` on a Ray cluster (``xned experts train --engine ray``):
    one encoder actor per CPU (or ``actors``), batches dealt round robin, two per actor in
    flight; the collector writes their vectors in the order it made the batches, so the
    experts are those of the local run. An actor that dies is restarted and its batch run
    again (up to 3 times)."""

    def __init__(self, encoder_dir: Path, *, address: str | None = None, actors: int | None = None, threads: int = 1):
        _connect(address)
        n = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)(EncoderActor)
        self.actors: list[Any] = [remote.remote(str(encoder_dir), threads) for _ in range(n)]
        self.in_flight = 2 * n
        self._next = 0

    def submit(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> Any:
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return actor.embed.remote(texts, spans)  # type: ignore[attr-defined]  # an actor handle's method

    def result(self, handle: Any) -> list[Any]:
        return list(ray.get(handle))

    def close(self) -> None:
        """End the actors: their CPUs go to the model fits (``ray_fit_map``)."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def ray_fit_map(address: str | None = None) -> Any:
    """An ``experts.fit.FitMap`` whose chunks of models are fit as Ray tasks (the training
    vectors put in the object store once; a task whose worker dies runs again)."""

    def run(data: Any, chunks: list) -> list:
        if not chunks:
            return []
        _connect(address)
        ref = ray.put(data)
        remote = ray.remote(num_cpus=1, max_retries=3)(fit_models)
        return list(ray.get([remote.remote(ref, c) for c in chunks]))

    return run


def kb_runner(address: str | None = None, read: Any = None) -> Any:
    """A ``kb.shards.Runner`` that reads shards as Ray tasks (one CPU each; a task whose
    worker dies is run again, up to 3 times). ``read`` replaces ``kb.shards.read_shard``
    (the fault test wraps it)."""

    def run(tasks: list) -> list:
        if not tasks:
            return []
        _connect(address)
        remote = ray.remote(num_cpus=1, max_retries=3)(read or read_shard)
        return ray.get([remote.remote(t) for t in tasks])

    return run
