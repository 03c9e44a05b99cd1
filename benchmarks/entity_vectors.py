"""Entity vectors per second at KB build: the embedder's batch shapes side by side on the
same entities of a built KB, interleaved, and the share of entities ``--vectors ambiguous``
embeds (from a bundle built with it).

    python benchmarks/entity_vectors.py --bundle build/eval/bundle-X --sample 4096 --repeat 3 \
        [--ambiguous build/eval/kb-...-vamb] [--threads 2] [--json]

Shapes: ``rows64`` (the embedder before issue 17's work: 256 passages per call, 64 rows per
encoder batch) and ``budget`` (4,096 passages per call, length-sorted, batches of at most
2,048 tokens). Per-entity figures count the KB's entities: with ``--ambiguous`` the
embedded share is applied (what a build pays per entity of the KB).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from xned.engine.encoder import Encoder
from xned.engine.entity_vectors import passage
from xned.engine.kb import KB


def texts_of(bundle: Path, n: int, seed: int) -> list[str]:
    kb = KB(bundle / "kb")
    idx = random.Random(seed).sample(range(len(kb)), min(n, len(kb)))
    return [passage(kb.qid(i), *kb.record(i), kb.type_name(i)) for i in idx]


def run(enc: Encoder, texts: list[str], shape: str) -> float:
    if shape == "rows64":
        enc.batch_rows, group = 64, 256
    else:
        enc.batch_rows, enc.batch_tokens, group = None, 2048, 4096
    t = time.perf_counter()
    for i in range(0, len(texts), group):
        enc.embed_texts(texts[i : i + group], "passage")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--ambiguous", type=Path, help="a bundle of the same KB built with --vectors ambiguous")
    ap.add_argument("--sample", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    texts = texts_of(args.bundle, args.sample, args.seed)
    enc = Encoder(args.bundle / "encoder", threads=args.threads)
    enc.embed_texts(texts[:64], "passage")  # session and tokenizer loaded, warm
    times: dict[str, list[float]] = {"rows64": [], "budget": []}
    for _ in range(args.repeat):
        for shape in times:  # interleaved
            times[shape].append(run(enc, texts, shape))
    per_s = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    out = {
        "entities": len(texts),
        "tokens_mean": float(np.mean([len(e.ids) for e in enc.tokenizer.encode_batch(texts)])),
        "embedded_per_s": {k: round(v, 1) for k, v in per_s.items()},
        "budget_vs_rows64": round(per_s["budget"] / per_s["rows64"], 3),
        "runs_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
    }
    if args.ambiguous is not None:
        rows = np.load(args.ambiguous / "kb" / "entities" / "vector_rows.npy", mmap_mode="r")
        share = float((rows >= 0).mean())
        out["ambiguous_share"] = round(share, 4)
        out["kb_entities_per_s"] = {
            "all, rows64 (before)": round(per_s["rows64"], 1),
            "ambiguous, budget (after)": round(per_s["budget"] / share, 1),
        }
        out["per_entity_speedup"] = round(per_s["budget"] / share / per_s["rows64"], 2)
    out["loadavg"] = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
