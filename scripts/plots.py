"""The documentation's plots, from the result JSON files in ``docs/results/data``.

    python scripts/plots.py [--data docs/results/data] [--out docs/img]

- ``risk-coverage.png``: accuracy of the best-scored links at each coverage (protocol);
- ``calibration.png``: mean confidence against the share of right links, per bin (protocol);
- ``accuracy-by-language.png``: in-KB accuracy per language, fused against the prior and
  similarity baselines (protocol);
- ``throughput.png``: mentions/s with 1 and 2 worker processes (``xned bench --json``);
- ``corrections-curve.png``: accuracy after 0-9, 10-49, 50-199 and 200+ corrections against
  the bundle alone (``scripts/corrections_curve.py``).

A plot whose data file is absent is skipped (and said so). Needs matplotlib (the ``docs``
extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _protocol_rows(report: dict[str, Any]) -> dict[str, Any]:
    return report.get("eval", report).get("datasets", {}) if isinstance(report, dict) else {}


def plot_all(data: Path, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    runs = {name: _protocol_rows(_load(data / f"protocol-{name}.json") or {}) for name in ("train", "all")}
    labels = {"train": "--supplement train", "all": "--supplement all"}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    if any(r.get("ALL (micro)", {}).get("risk_coverage_fused") for r in runs.values()):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, rows in runs.items():
            curve = rows.get("ALL (micro)", {}).get("risk_coverage_fused") or []
            if curve:
                ax.plot([c for c, _ in curve], [a for _, a in curve], marker="o", label=labels[name])
        ax.set_xlabel("coverage (share of links kept, best scores first)")
        ax.set_ylabel("accuracy of the links kept")
        ax.set_title("Risk-coverage, 31 development sets")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "risk-coverage.png")
    if any(r.get("ALL (micro)", {}).get("reliability_fused") for r in runs.values()):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        for name, rows in runs.items():
            bins = rows.get("ALL (micro)", {}).get("reliability_fused") or []
            if bins:
                ax.plot([b["confidence"] for b in bins], [b["right"] for b in bins], marker="o", label=labels[name])
        ax.set_xlabel("mean confidence in the bin")
        ax.set_ylabel("share of links right")
        ax.set_title("Calibration of the link score")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "calibration.png")
    rows = runs["train"] or runs["all"]
    langs = sorted(k for k in rows if k.startswith("ALL ") and k != "ALL (micro)")
    if langs:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        width = 0.27
        for k, (key, name) in enumerate(
            (("acc_prior", "prior"), ("acc_similarity", "similarity"), ("acc_fused", "fused"))
        ):
            xs = [i + (k - 1) * width for i in range(len(langs))]
            ax.bar(xs, [100 * (rows[lg].get(key) or 0) for lg in langs], width, label=name)
        ax.set_xticks(range(len(langs)), [lg.split()[1] for lg in langs])
        ax.set_ylabel("in-KB accuracy, %")
        ax.set_title("Accuracy per language (" + ("train" if runs["train"] else "all") + " supplement)")
        ax.legend()
        save(fig, "accuracy-by-language.png")
    bench = _load(data / "bench.json")
    if bench:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        xs = [1, 2]
        ys = [bench.get("workers_1_mentions_per_s", 0), bench.get("workers_2_mentions_per_s", 0)]
        ax.bar([str(x) for x in xs], ys, color=["#5470c6", "#91cc75"])
        ax.set_xlabel("worker processes")
        ax.set_ylabel("mentions/s")
        ax.set_title("Throughput, evaluation KB, given spans")
        save(fig, "throughput.png")
    curve = _load(data / "corrections-curve.json")
    if curve and curve.get("curve"):
        scopes = curve["curve"]
        scope = next((k for k in scopes if k.lower() in ("all", "all (micro)")), next(iter(scopes)))
        buckets = scopes[scope]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        names = list(buckets)
        ax.plot(names, [buckets[b]["without"] for b in names], marker="o", label="bundle alone")
        ax.plot(names, [buckets[b]["with"] for b in names], marker="o", label="with the corrections so far")
        ax.set_xlabel("corrections taught before the mention")
        ax.set_ylabel("accuracy, %")
        ax.set_title(f"A simulated analyst ({scope})")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "corrections-curve.png")
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "docs" / "results" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    made = plot_all(args.data, args.out)
    print("wrote " + (", ".join(made) if made else "nothing (no data files)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
