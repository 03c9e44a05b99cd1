"""NIL clustering at scale: a store filled with N NIL mentions (default 100,000: synthetic
names and 384-dim context vectors), then the time to place one more document of 50 NIL
mentions (median and p95 over warm documents) and the process's memory beside the store's
size on disk. The store is an SQLite file read page by page: memory does not follow it.

    python benchmarks/nil_store.py [--mentions 100000] [--per-doc 50] [--dim 384]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from xned.engine.nil import NilMention, NilStore

FIRST = [f"Given{i}" for i in range(400)]
LAST = [f"Family{i}" for i in range(250)]


def document(rng: np.random.Generator, n: int, dim: int, people: np.ndarray) -> tuple[list[NilMention], str]:
    """A document of ``n`` NIL mentions of people drawn from ``people`` (index into first x last names)."""
    words, mentions = [], []
    for k in rng.choice(len(people), size=n):
        p = int(people[k])
        name = f"{FIRST[p % len(FIRST)]} {LAST[p // len(FIRST) % len(LAST)]}"
        start = sum(len(w) + 1 for w in words)
        words.append(name)
        v = np.random.default_rng(p).normal(size=dim) + 0.3 * rng.normal(size=dim)  # the person's context, noisy
        mentions.append(NilMention(0, start, start + len(name), name, (v / np.linalg.norm(v)).astype(np.float32)))
    return mentions, " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mentions", type=int, default=100_000)
    ap.add_argument("--per-doc", type=int, default=50)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--docs", type=int, default=30, help="Warm documents timed after the fill.")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    people = rng.permutation(len(FIRST) * len(LAST))[: args.mentions // 3]  # about three mentions a person
    with tempfile.TemporaryDirectory(prefix="xned-nil-") as tmp:
        store = NilStore(Path(tmp))
        t = time.perf_counter()
        for _ in range(args.mentions // args.per_doc):
            ms, text = document(rng, args.per_doc, args.dim, people)
            store.assign(ms, [text], ["fill"])
        fill = time.perf_counter() - t
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(args.docs):
            ms, text = document(rng, args.per_doc, args.dim, people)
            t = time.perf_counter()
            store.assign(ms, [text], ["timed"])
            times.append(time.perf_counter() - t)
        times.sort()
        print(
            json.dumps(
                {
                    "stored_mentions": args.mentions,
                    "clusters": store.db.execute("SELECT COUNT(*) FROM clusters").fetchone()[0],
                    "fill_s": round(fill, 1),
                    "per_doc_mentions": args.per_doc,
                    "per_doc_ms_median": round(1000 * statistics.median(times), 2),
                    "per_doc_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 2),
                    "store_mb": round(sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6, 1),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "peak_rss_mb_before_timed": round(rss_before / 1024, 1),
                    "loadavg": os.getloadavg()[0],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
