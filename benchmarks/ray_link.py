"""Ray actors against the local ``--workers`` runner on the same corpus.

    python benchmarks/ray_link.py FILE.jsonl... [--bundle B] [--given-spans] [--limit N]

Times (wall, medians of --repeat runs) linking the documents with ``xned.runner.link_stream``
at 1 and 2 workers and with ``xned.integrations.ray.link_dataset`` at 1 and 2 actors on a
local 2-CPU Ray cluster (started once, not timed; actor start-up is timed, as a job pays
it). Prints docs/s, mentions/s and Ray's per-document overhead against the local runner at
the same parallelism, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import ray

from xned.integrations.ray import link_dataset
from xned.runner import LinkOptions, link_stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--given-spans", action="store_true")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    docs = []
    for f in args.files:
        with open(f, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if args.limit and i >= args.limit:
                    break
                d = json.loads(line)
                docs.append(
                    {"id": str(d.get("id", len(docs))), "text": d["text"], "lang": d.get("lang")}
                    | (
                        {"mentions": [[m["start"], m["end"]] for m in d.get("mentions", [])]}
                        if args.given_spans
                        else {}
                    )
                )
    opts = LinkOptions(bundle=args.bundle, given_spans=args.given_spans, threads=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    results: dict[str, float] = {}
    mentions = 0
    for name, run in [
        ("local-1", lambda: list(link_stream(docs, opts, workers=1))),
        ("local-2", lambda: list(link_stream(docs, opts, workers=2))),
        ("ray-1", lambda: link_dataset(ray.data.from_items(docs), bundle=args.bundle, given_spans=args.given_spans,
                                       actors=1).take_all()),
        ("ray-2", lambda: link_dataset(ray.data.from_items(docs), bundle=args.bundle, given_spans=args.given_spans,
                                       actors=2).take_all()),
    ]:  # fmt: skip
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t)
        results[name] = statistics.median(times)
        if name == "local-1":
            mentions = sum(len(r.links) for r in out)  # type: ignore[union-attr]
        print(
            json.dumps(
                {
                    "engine": name,
                    "docs": len(docs),
                    "seconds": round(results[name], 2),
                    "docs_per_s": round(len(docs) / results[name], 1),
                    "mentions_per_s": round(mentions / results[name], 1),
                    "loadavg": os.getloadavg()[0],
                }
            ),
            flush=True,
        )
    for n in ("1", "2"):
        extra = (results[f"ray-{n}"] - results[f"local-{n}"]) / len(docs) * 1000
        print(json.dumps({"ray_overhead_ms_per_doc": round(extra, 2), "parallelism": int(n)}))
    ray.shutdown()


if __name__ == "__main__":
    main()
