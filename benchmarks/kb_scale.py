"""KB build at scale: a synthetic Wikidata JSON dump of N items, built with ``xned kb build``
in a child process (wall time, peak RSS), then lookup and text-scan speed on the result.

    python benchmarks/kb_scale.py --entities 1000000 --work build/bench-kb [--workers 2]

The synthetic items follow the dump layout (one JSON object per line inside ``[ ]``):
labels in 1-40 of 60 languages (geometric, mean about 6), 0-4 English aliases, an English
description, one P31 type and 0-30 sitelinks; a fifth of the labels come from a shared
pool of names, so aliases are ambiguous as in the real data. Sizes and figures per entity
and per alias are printed with a projection to 20M and 100M items.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGS = [
    "en", "de", "fr", "es", "it", "nl", "pl", "pt", "ru", "ja", "zh", "ar", "sv", "uk", "ca", "no", "fi", "cs",
    "hu", "ko", "id", "tr", "ro", "fa", "he", "da", "eo", "eu", "sr", "bg", "el", "hi", "vi", "th", "lt", "sk",
    "sl", "et", "hr", "gl", "ms", "be", "kk", "hy", "ka", "ta", "ur", "bn", "az", "lv", "af", "cy", "ga", "is",
    "mk", "sq", "sw", "tl", "uz", "mn",
]  # fmt: skip
SYL = ["ka", "to", "ri", "an", "mel", "sor", "vi", "lu", "ber", "gen", "hal", "os", "tan", "qui", "ze", "dor"]


def _name(rng: random.Random) -> str:
    words = ["".join(rng.choice(SYL) for _ in range(rng.randint(2, 4))).capitalize() for _ in range(rng.randint(1, 3))]
    return " ".join(words)


def make_dump(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pool = [_name(rng) for _ in range(max(1000, n // 50))]
    tmp = path.with_name(path.name + ".incomplete")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(n):
            qid = f"Q{i * 7 + 1}"
            base = rng.choice(pool) if rng.random() < 0.2 else _name(rng)
            k = min(len(LANGS), 1 + int(rng.expovariate(1 / 5)))
            langs = ["en", *rng.sample(LANGS[1:], k - 1)]
            labels = {lg: {"language": lg, "value": base if rng.random() < 0.6 else _name(rng)} for lg in langs}
            aliases = {"en": [{"language": "en", "value": _name(rng)} for _ in range(rng.randint(0, 4))]}
            sites = {f"{lg}wiki": {"site": f"{lg}wiki", "title": base} for lg in langs[: rng.randint(0, min(k, 30))]}
            item = {
                "type": "item",
                "id": qid,
                "labels": labels,
                "descriptions": {"en": {"language": "en", "value": f"synthetic entity {i} of kind {i % 97}"}},
                "aliases": aliases,
                "claims": {"P31": [{"mainsnak": {"datavalue": {"value": {"id": f"Q{5 + i % 40}"}}}}]},
                "sitelinks": sites,
            }
            f.write(json.dumps(item, ensure_ascii=False) + (",\n" if i < n - 1 else "\n"))
        f.write("]\n")
    os.replace(tmp, path)


def build(dump: Path, bundle: Path, workers: int, extra: list[str] | None = None) -> dict[str, float]:
    cmd = [sys.executable, "-m", "xned.cli.main", "kb", "build", str(dump), "--bundle", str(bundle)]
    # entity vectors only where an encoder is given (--build-args "--encoder DIR --profile laptop")
    cmd += ([] if "--encoder" in (extra or []) else ["--no-vectors"]) + ["--workers", str(workers), *(extra or [])]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": wall, "peak_rss_mb": max(peak, before) / 1024}


def lookups(bundle: Path, n: int = 20000, seed: int = 0) -> dict[str, float]:
    import numpy as np

    from xned.engine.kb import KB
    from xned.engine.mentions import Detector

    kb = KB(bundle / "kb")
    table = kb.base.tables["en"]
    rng = random.Random(seed)
    keys = [table.keys.restore_key(rng.randrange(len(table))) for _ in range(n)]
    per = []
    for _ in range(5):
        t0 = time.perf_counter()
        for k in keys:
            kb.lookup("en", k)
        per.append((time.perf_counter() - t0) / n * 1e6)
    words = [
        rng.choice(keys) if rng.random() < 0.1 else rng.choice(["the", "of", "and", "in", "a", "was"])
        for _ in range(20000)
    ]
    text = " ".join(w.title() for w in words)
    tables = [t for t, _ in kb.tables_for("en")]
    det = Detector([t.keys for t in tables], lambda k: kb.link_probability("en", k))
    scan = []
    for _ in range(5):
        t0 = time.perf_counter()
        spans = det.detect(text)
        scan.append((time.perf_counter() - t0) / (len(text.encode()) / 1024) * 1e3)
    del np
    return {"lookup_us": statistics.median(per), "scan_ms_per_kb": statistics.median(scan), "spans": len(spans)}


def sizes(bundle: Path) -> dict[str, float]:
    meta = json.loads((bundle / "kb" / "meta.json").read_text())
    kb_bytes = sum(p.stat().st_size for p in (bundle / "kb").rglob("*") if p.is_file())
    ent_bytes = sum(p.stat().st_size for p in (bundle / "kb" / "entities").rglob("*") if p.is_file())
    alias_keys = sum(meta["languages"].values())
    return {
        "entities": meta["entities"],
        "alias_keys": alias_keys,
        "kb_mb": kb_bytes / 1e6,
        "bytes_per_entity_store": ent_bytes / max(meta["entities"], 1),
        "bytes_per_alias_key": (kb_bytes - ent_bytes) / max(alias_keys, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench-kb")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--build-args", default="", help="more kb build options, e.g. '--keep-class Q5 --min-sitelinks 1'")
    args = ap.parse_args()
    extra = shlex.split(args.build_args)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.entities:
        dump = args.work / f"synthetic-{n}.json"
        if not dump.exists():
            t0 = time.perf_counter()
            make_dump(dump, n)
            print(f"generated {dump} ({dump.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
        bundle = args.work / (f"bundle-{n}" + ("-filtered" if extra else ""))
        b = build(dump, bundle, args.workers, extra)
        s = sizes(bundle)
        lk = lookups(bundle)
        row = {"items": n, **b, **s, **lk}
        row["entities_per_s"] = n / b["seconds"]
        row["alias_keys_per_s"] = s["alias_keys"] / b["seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    head = "items | build s | entities/s | keys/s | peak RSS MB | KB MB | B/entity | B/key | lookup µs | scan ms/KB"
    print(f"\n| {head} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['items']:,} | {r['seconds']:.0f} | {r['entities_per_s']:,.0f} | {r['alias_keys_per_s']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['kb_mb']:.0f} | {r['bytes_per_entity_store']:.0f} | "
            f"{r['bytes_per_alias_key']:.0f} | {r['lookup_us']:.1f} | {r['scan_ms_per_kb']:.2f} |"
        )
    last = rows[-1]
    keys_per_item = last["alias_keys"] / last["items"]
    for total in (20_000_000, 100_000_000):
        mb = total * (last["bytes_per_entity_store"] + keys_per_item * last["bytes_per_alias_key"]) / 1e6
        hours = total / last["entities_per_s"] / 3600
        print(f"projection {total:,} items: KB about {mb / 1e3:.1f} GB, build about {hours:.1f} h at this rate")


if __name__ == "__main__":
    main()
