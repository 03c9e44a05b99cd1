"""Encoder speed: PyTorch fp32 (transformers) vs ONNX Runtime fp32 vs ONNX Runtime int8.

One run, same inputs: every backend runs in its own subprocess (so peak RSS is its own) on
the same token ids (real multilingual sentences, cycled to exactly ``seq`` tokens), at batch
sizes 1 and 32 and sequence lengths 64 and 128. Reports the median sentences/s over repeats,
peak RSS, and ratios against PyTorch fp32 measured in the same run.

    python benchmarks/encoder_speed.py --hf /tmp/me5-hf --fp32 /tmp/me5-fp32/model.onnx \
        --int8 /tmp/me5-int8/model.onnx --tokenizer /tmp/me5-hf/tokenizer.json \
        --pruned xned/assets/default/encoder/model.onnx \
        --pruned-tokenizer xned/assets/default/encoder/tokenizer.json

(PyTorch needs the ``[export]`` extra. ``--fp32`` is an fp32 ONNX export of the same model,
e.g. ``xned export encoder --quantize none``. The pruned model is tokenized with its own
tokenizer, which yields the same pieces for these inputs.)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = [(1, 64), (1, 128), (32, 64), (32, 128)]


def _ids(tokenizer: str, seq: int, batch: int):
    import numpy as np
    from tokenizers import Tokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from xned.export.encoder.retrieval import SENTENCES

    tok = Tokenizer.from_file(tokenizer)
    texts = [s for lang in SENTENCES for s in SENTENCES[lang]]
    rows = []
    for i in range(batch):
        ids: list[int] = []
        j = i
        while len(ids) < seq:
            ids += tok.encode(texts[j % len(texts)]).ids
            j += 1
        rows.append(ids[:seq])
    return np.asarray(rows, dtype=np.int64)


def worker(args: argparse.Namespace) -> None:
    import numpy as np

    results = {}
    if args.backend == "torch":
        import torch
        import transformers

        torch.set_num_threads(args.threads)
        model = transformers.AutoModel.from_pretrained(args.path, local_files_only=True).eval()

        def run(ids: np.ndarray) -> None:
            with torch.inference_mode():
                model(input_ids=torch.from_numpy(ids), attention_mask=torch.ones_like(torch.from_numpy(ids)))

    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(args.path, opts, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}

        def run(ids: np.ndarray) -> None:
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in names:
                feed["token_type_ids"] = np.zeros_like(ids)
            sess.run(None, feed)

    for batch, seq in SHAPES:
        ids = _ids(args.tokenizer, seq, batch)
        run(ids)  # warm-up
        reps = args.repeat if batch > 1 else args.repeat * 6
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            run(ids)
            times.append(time.perf_counter() - t)
        results[f"b{batch}_s{seq}"] = batch / statistics.median(times)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", help="Hugging Face model directory (PyTorch fp32)")
    ap.add_argument("--fp32", help="fp32 ONNX model")
    ap.add_argument("--int8", help="int8 ONNX model")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json of the HF model")
    ap.add_argument("--pruned", help="a vocabulary-pruned int8 ONNX model (e.g. the default bundle's)")
    ap.add_argument("--pruned-tokenizer", help="tokenizer.json of the pruned model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--worker", choices=["torch", "onnx"], dest="backend")
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.backend:
        worker(args)
        return
    runs = [("pytorch fp32", "torch", args.hf, args.tokenizer)]
    runs += [("onnx fp32", "onnx", args.fp32, args.tokenizer)]
    runs += [("onnx int8", "onnx", args.int8, args.tokenizer)]
    runs += [("onnx int8 pruned", "onnx", args.pruned, args.pruned_tokenizer or args.tokenizer)]
    table = {}
    for label, backend, path, tok in runs:
        if not path:
            continue
        cmd = [sys.executable, __file__, "--worker", backend, "--path", path, "--tokenizer", tok]
        cmd += ["--threads", str(args.threads), "--repeat", str(args.repeat)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        table[label] = json.loads(out)
        print(f"{label}: {table[label]}", file=sys.stderr)
    base = table.get("pytorch fp32")
    cols = [f"b{b}_s{s}" for b, s in SHAPES]
    print("| backend | " + " | ".join(f"batch {b}, seq {s}" for b, s in SHAPES) + " | peak RSS |")
    print("|---" * (len(cols) + 2) + "|")
    for label, res in table.items():
        cells = []
        for c in cols:
            ratio = f" ({res[c] / base[c]:.2f}x)" if base and label != "pytorch fp32" else ""
            cells.append(f"{res[c]:.1f}/s{ratio}")
        print(f"| {label} | " + " | ".join(cells) + f" | {res['peak_rss_mb']:.0f} MB |")
    print(json.dumps(table), file=sys.stderr)


if __name__ == "__main__":
    main()
