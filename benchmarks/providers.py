"""Execution providers measured, not only listed: the CPU provider against another one
(``--device openvino``, ``cuda`` ...) of the same onnxruntime build, in one process,
interleaved: session creation time, the encoder's tokens/s, whole linking mentions/s, and
whether the links are the same (QIDs equal, scores within 1e-3).

    python benchmarks/providers.py --bundle B --input docs.jsonl --device openvino

Run it with the onnxruntime build that has the provider (``pip install onnxruntime-openvino``
in an environment of its own: it replaces the ``onnxruntime`` module). Prints JSON with the
load average before and after and the CPU's int8 flags.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from xned.bench import load_corpus
from xned.engine.linker import Linker
from xned.engine.session import cpu_int8_flags as cpu_flags
from xned.engine.session import device_providers


def measure(bundle: Path, docs: list[dict], device: str, threads: int) -> dict:
    t = time.perf_counter()
    linker = Linker.load(bundle, threads=threads, use_corrections=False, providers=device_providers(device))
    assert linker.encoder is not None
    linker.encoder.session  # noqa: B018  # created now, timed
    created = time.perf_counter() - t
    texts = [d["text"] for d in docs]
    spans = [
        [tuple(m) if isinstance(m, list) else (m["start"], m["end"]) for m in d.get("mentions") or []] for d in docs
    ]
    t = time.perf_counter()
    linker.encoder.embed_mentions(texts, spans)
    encode = time.perf_counter() - t
    tokens = sum(len(linker.encoder.tokenizer.encode(x, add_special_tokens=False).ids) for x in texts)
    t = time.perf_counter()
    results = list(linker.link_batch(docs, given_spans=True))
    link = time.perf_counter() - t
    links = [(lk.start, lk.end, lk.qid, lk.score) for r in results for lk in r.links]
    return {
        "providers": linker.encoder.providers_in_use,
        "session_s": created,
        "tokens_per_s": tokens / encode,
        "mentions_per_s": len(links) / link,
        "links": links,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--input", type=Path, action="append", required=True)
    ap.add_argument("--device", default="openvino")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()
    docs = load_corpus(args.input, args.limit)
    before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"cpu": [], args.device: []}
    for _ in range(args.repeat):  # interleaved: load from other processes hits both alike
        for device in runs:
            runs[device].append(measure(args.bundle, docs, device, args.threads))
    out: dict = {"cpu_flags": cpu_flags(), "documents": len(docs), "threads": args.threads, "loadavg_before": before}
    for device, rs in runs.items():
        out[device] = {
            "providers": rs[0]["providers"],
            **{
                k: round(statistics.median(r[k] for r in rs), 3)
                for k in ("session_s", "tokens_per_s", "mentions_per_s")
            },
        }
    a, b = runs["cpu"][0]["links"], runs[args.device][0]["links"]
    same = len(a) == len(b) and all(x[:3] == y[:3] for x, y in zip(a, b, strict=True))
    diffs = [abs((x[3] or 0) - (y[3] or 0)) for x, y in zip(a, b, strict=False)]
    out["same_qids"] = same
    out["max_score_diff"] = round(max(diffs, default=0.0), 6)
    out[f"{args.device}_vs_cpu_mentions_per_s"] = round(
        out[args.device]["mentions_per_s"] / out["cpu"]["mentions_per_s"], 2
    )
    out["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
