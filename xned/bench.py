"""Benchmark helpers behind ``xned bench`` (library function returning data)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

SAMPLE_DOCS = [
    ("en", "Paris Hilton stayed at a hotel in Paris before flying to Tokyo and Berlin."),
    ("es", "El presidente visitó Madrid, Barcelona y Zúrich antes de volar a Nueva York."),
    ("ja", "パリス・ヒルトンは東京と京都のホテルに泊まった。"),
    ("en", "Washington crossed the Delaware with his army while Georgia voted."),
    ("es", "Amazon y Sony abrieron oficinas en Berlín y Lisboa."),
    ("en", "Freddie Mercury sang with Queen; Mercury is the smallest planet."),
]


def _load_docs(path: Path | None, limit: int) -> list[dict[str, Any]]:
    if path is None:
        return [{"id": str(i), "lang": lang, "text": text} for i, (lang, text) in enumerate(SAMPLE_DOCS)]
    docs = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            docs.append(json.loads(line) if line.startswith("{") else {"id": str(i), "text": line})
            if len(docs) >= limit:
                break
    return docs


def run_bench(
    bundle: Path | None,
    input: Path | None,
    *,
    repeat: int = 5,
    limit: int = 500,
    threads: int | None = None,
    given_spans: bool = False,
) -> dict[str, Any]:
    from xned.engine.linker import Linker

    t0 = time.perf_counter()
    linker = Linker.load(bundle, threads=threads)
    docs = _load_docs(input, limit)
    first = next(linker.link_batch(docs[:1], given_spans=given_spans))
    cold = time.perf_counter() - t0
    del first
    pass_times, mentions, lat = [], 0, []
    for _ in range(repeat):
        t = time.perf_counter()
        mentions = 0
        for d in docs:
            ts = time.perf_counter()
            res = next(linker.link_batch([d], given_spans=given_spans))
            lat.append(time.perf_counter() - ts)
            mentions += len(res.links)
        pass_times.append(time.perf_counter() - t)
    batch_times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _res in linker.link_batch(docs, given_spans=given_spans, chunk_size=64):
            pass
        batch_times.append(time.perf_counter() - t)
    med = statistics.median(pass_times)
    bmed = statistics.median(batch_times)
    lat.sort()
    return {
        "bundle": str(linker.root),
        "documents": len(docs),
        "mentions_per_pass": mentions,
        "cold_start_to_first_result_s": round(cold, 3),
        "docs_per_s_single": round(len(docs) / med, 1),
        "mentions_per_s_single": round(mentions / med, 1),
        "docs_per_s_batched": round(len(docs) / bmed, 1),
        "mentions_per_s_batched": round(mentions / bmed, 1),
        "batched_vs_single_speedup": round(med / bmed, 2),
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 2),
        "latency_p95_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.95))], 2),
        "repeat": repeat,
    }
