"""Encoder load cost: file size, time to a first embedding and peak RSS, per bundle encoder.

Each encoder is loaded in a fresh subprocess (``repeat`` times; medians): the process
imports xned, creates the tokenizer and the ONNX session and embeds one sentence.

    python benchmarks/encoder_load.py build/enc/int8-full xned/assets/default/encoder
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from xned.engine.encoder import Encoder
enc = Encoder(sys.argv[1], threads=1)
enc.embed_texts(["Paris is the capital of France."])
print(json.dumps({"load_s": time.perf_counter() - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("encoders", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print("| encoder | model.onnx MiB | tokenizer MiB | load + first embedding s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for enc in args.encoders:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(enc)], check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        cfg = json.loads((enc / "config.json").read_text())
        model = enc / cfg.get("model", "model.onnx")
        tok = enc / cfg.get("tokenizer", "tokenizer.json")
        print(
            f"| {enc} | {model.stat().st_size / 2**20:.1f} | {tok.stat().st_size / 2**20:.1f} | "
            f"{statistics.median(r['load_s'] for r in runs):.2f} | {statistics.median(r['rss_mb'] for r in runs):.0f} |"
        )


if __name__ == "__main__":
    main()
