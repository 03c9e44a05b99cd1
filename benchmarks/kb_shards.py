"""KB build time: one process (``build_kb``) against the sharded build (``kb_shards``) with
local worker processes and on a local Ray cluster; every run must give the same bytes.

    python benchmarks/kb_shards.py SOURCES... [--repeat 3] [--shard-mb 4] [--workers 2] [--json OUT]

Runs are interleaved (single, local shards, Ray, single, ...) so machine noise hits each
alike; prints medians and their ratios, with ``/proc/loadavg`` at the start and the end.
Entity vectors are not computed (they are the same work in every mode).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from xned.export.kb.shards import ShardPlan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def main() -> None:
    from xned.export.kb.build import build_kb
    from xned.export.kb.shards import build_sharded, local_runner

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shard-mb", type=float, default=4.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shard_bytes = int(args.shard_mb * 1024 * 1024)
    modes = {
        "single": lambda dest: build_kb(args.sources, dest),
        "local_shards": lambda dest: build_sharded(
            args.sources, dest, ShardPlan(local_runner(args.workers), shard_bytes=shard_bytes)
        ),
    }
    try:
        import ray

        from xned.integrations.ray import kb_runner

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        modes["ray"] = lambda dest: build_sharded(args.sources, dest, ShardPlan(kb_runner(), shard_bytes=shard_bytes))
    except ImportError:
        print("ray is not installed: skipping the Ray mode", file=sys.stderr)
    start_load = loadavg()
    times: dict[str, list[float]] = {m: [] for m in modes}
    digests: dict[str, set[str]] = {m: set() for m in modes}
    work = Path(tempfile.mkdtemp(prefix="xned-bench-kb-"))
    try:
        for r in range(args.repeat):
            for name, run in modes.items():
                dest = work / f"{name}-{r}"
                t0 = time.perf_counter()
                run(dest)
                times[name].append(time.perf_counter() - t0)
                digests[name].add(digest(dest))
                shutil.rmtree(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = len(set().union(*digests.values())) == 1
    med = {m: statistics.median(ts) for m, ts in times.items()}
    report = {
        "sources": [str(s) for s in args.sources],
        "bytes": sum(s.stat().st_size for s in args.sources),
        "shard_mb": args.shard_mb,
        "workers": args.workers,
        "median_s": {m: round(v, 2) for m, v in med.items()},
        "speedup_vs_single": {m: round(med["single"] / v, 2) for m, v in med.items()},
        "identical_output": same,
        "loadavg": {"start": start_load, "end": loadavg()},
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if not same:
        sys.exit("the modes gave different KBs")


if __name__ == "__main__":
    main()
