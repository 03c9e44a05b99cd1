"""A/B of two xned checkouts on the same corpus: ``xned link`` as a whole process (start-up
included), runs interleaved so machine load hits both alike; medians and the ratio.

    git worktree add /tmp/xned-before <commit>
    python benchmarks/link_ab.py --a /tmp/xned-before --b . -i corpus.jsonl [--repeat 3] \
        [--bundle DIR] -- --given-spans --threads 2

or of two options of one checkout (``--a-args`` / ``--b-args``, e.g. the context tiers):

    python benchmarks/link_ab.py --a . --b . --a-args "--tier transformer" --b-args "--tier auto" \
        -i corpus.jsonl --bundle DIR -- --given-spans --workers 2

Prints mentions/s and wall seconds of each side, b/a, the share of links (QID or NIL) the
two sides gave alike, the load average and the CPU's int8 flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What the installed ``xned`` console script runs (``entry``: before 2496fce, ``python -m``
# exited differently).
SCRIPT = "import sys; from xned.cli.main import entry; sys.argv[0] = 'xned'; entry()"


def run(checkout: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", SCRIPT, "link", *args], env=env, cwd=checkout, capture_output=True)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"{checkout}: {p.stderr.decode(errors='replace')[-800:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, required=True)
    ap.add_argument("-i", "--input", type=Path, action="append", required=True)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--a-args", default="", help="options for side a only")
    ap.add_argument("--b-args", default="", help="options for side b only")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    extra = [x for x in ns.rest if x != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with open(corpus, "w", encoding="utf-8") as out:
            for path in ns.input:
                out.write(Path(path).read_text(encoding="utf-8"))
        results: dict[str, list[float]] = {"a": [], "b": []}
        mentions = {}
        links: dict[str, list[str | None]] = {}
        for _ in range(ns.repeat):
            for side in ("a", "b"):
                dest = Path(tmp) / f"{side}.jsonl"
                dest.unlink(missing_ok=True)
                own = shlex.split(getattr(ns, f"{side}_args"))
                args = ["-i", str(corpus.resolve()), "-f", "jsonl", "-o", str(dest), *extra, *own]
                if ns.bundle:
                    args += ["--bundle", str(ns.bundle.resolve())]
                results[side].append(run(getattr(ns, side).resolve(), args))
                with open(dest, encoding="utf-8") as f:
                    docs = [json.loads(line) for line in f]
                mentions[side] = sum(len(d["mentions"]) for d in docs)
                links[side] = [m.get("qid") for d in docs for m in d["mentions"]]
    from xned.engine.session import cpu_int8_flags  # this checkout's: a machine fact, not a side of the A/B

    report: dict = {"loadavg": os.getloadavg()[0], "cpu_int8_flags": cpu_int8_flags()}
    for side in ("a", "b"):
        wall = statistics.median(results[side])
        report[side] = {
            "checkout": str(getattr(ns, side)),
            "mentions": mentions[side],
            "wall_s": round(wall, 2),
            "mentions_per_s": round(mentions[side] / wall, 1),
            "walls": [round(r, 2) for r in results[side]],
        }
    report["b_over_a"] = round(report["b"]["mentions_per_s"] / report["a"]["mentions_per_s"], 2)
    if len(links["a"]) == len(links["b"]) and links["a"]:
        same = sum(x == y for x, y in zip(links["a"], links["b"], strict=True))
        report["links_alike"] = round(same / len(links["a"]), 4)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
