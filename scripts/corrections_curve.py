"""A simulated analyst: does teaching corrections help on the documents that follow?

    python scripts/corrections_curve.py BUNDLE ../shared/data/eval/*.jsonl --titles TITLES.tsv
        [--work build/corrections] [--threads 2]

For each evaluation file, in document order: link the document with its gold spans (fused
scorer, the file's own corrections so far), score it against the gold, then "correct" its
errors as an analyst would: every wrong mention whose gold entity is among its candidates is
taught (``Linker.teach_batch``). The same documents are linked without corrections as the
baseline. Accuracy (gold NIL counted; gold titles the map cannot resolve excluded) is
reported for the mentions linked after 0-9, 10-49, 50-199 and 200+ corrections, per language
and in all, with the baseline on the same mentions; then each file is linked again with the
corrections taught on every *other* file (drift: a correction must not spoil other text);
then the cost per correction and per stored example. Writes WORK/curve.json and prints
markdown. Uses a fresh state directory under WORK; the bundle is not modified.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUCKETS = ((0, 10), (10, 50), (50, 200), (200, 10**9))


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 10**9 else f"{lo}-{hi - 1}"


def as_input(doc, spans):
    return {"id": doc.id, "text": doc.text, "lang": doc.lang, "mentions": [{"start": s, "end": e} for s, e in spans]}


def main() -> None:
    from xned.engine.linker import Linker
    from xned.engine.normalize import normalize
    from xned.evalsets import dataset_name, read_dataset
    from xned.titles import load_titles

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--titles", type=Path)
    ap.add_argument("--work", type=Path, default=Path("build/corrections"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-drift", action="store_true", help="skip the drift pass (the longest part)")
    args = ap.parse_args()
    titles = load_titles(args.titles)
    shutil.rmtree(args.work / "state", ignore_errors=True)
    base = Linker.load(args.bundle, threads=args.threads, use_corrections=False)

    rows = []  # per scored mention: set, lang, corrections before its document, learner ok, base ok
    teach_ms: list[float] = []
    taught_per_set: dict[str, int] = {}
    sets = []
    for path in args.data:
        name = dataset_name(path)
        docs = read_dataset(path, titles)
        sets.append((name, docs))
        learner = Linker.load(args.bundle, threads=args.threads, state=args.work / "state" / name)
        made = 0
        for doc in docs:
            gold = [g for g in doc.gold if not g.unresolved]
            if not gold:
                continue
            spans = [(g.start, g.end) for g in gold]
            got = next(learner.link_stream([as_input(doc, spans)], candidates=True))
            ref = next(base.link_stream([as_input(doc, spans)]))
            if got.error or ref.error:
                print(f"{name} {doc.id}: {got.error or ref.error}", file=sys.stderr)
                continue
            fixes = []
            for g, lk, rk in zip(gold, got.links, ref.links, strict=True):
                rows.append((name, doc.lang or name.rsplit(".", 1)[-1], made, lk.qid == g.qid, rk.qid == g.qid))
                if lk.qid != g.qid and (g.qid is None or g.qid in {c.qid for c in lk.candidates}):
                    fixes.append({"start": g.start, "end": g.end, "qid": g.qid})
            if fixes:
                t0 = time.perf_counter()
                learner.teach_batch([{"text": doc.text, "lang": doc.lang, "mentions": fixes}])
                teach_ms.append((time.perf_counter() - t0) * 1000 / len(fixes))
                made += len(fixes)
        taught_per_set[name] = made
        print(f"{name}: {len(docs)} documents, {made} corrections", file=sys.stderr, flush=True)

    curve: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for scope in ["all", *sorted({r[1] for r in rows})]:
        for lo, hi in BUCKETS:
            sel = [r for r in rows if (scope == "all" or r[1] == scope) and lo <= r[2] < hi]
            if sel:
                curve[scope][bucket_name(lo, hi)] = {
                    "mentions": len(sel),
                    "with": round(100 * sum(r[3] for r in sel) / len(sel), 2),
                    "without": round(100 * sum(r[4] for r in sel) / len(sel), 2),
                }

    # drift: every file again, with the corrections taught on all the other files
    drift = {}
    states = args.work / "state"
    for name, docs in [] if args.no_drift else sets:
        others = args.work / "drift" / name
        shutil.rmtree(others, ignore_errors=True)
        lk = Linker.load(args.bundle, threads=args.threads, state=others)
        pooled = [e for other, _ in sets if other != name for e in _examples(states / other, args.bundle)]
        if pooled:
            lk.corrections.add(pooled, args.bundle)  # type: ignore[union-attr]
        taught = defaultdict(Counter)  # key -> labels the other sets taught
        for e in pooled:
            taught[e.key][e.qid] += 1
        golds = defaultdict(Counter)  # key -> this set's gold labels
        scored = []
        for doc in docs:
            gold = [g for g in doc.gold if not g.unresolved]
            if not gold:
                continue
            spans = [(g.start, g.end) for g in gold]
            got = next(lk.link_stream([as_input(doc, spans)]))
            ref = next(base.link_stream([as_input(doc, spans)]))
            if got.error or ref.error:
                continue
            for g, a, b in zip(gold, got.links, ref.links, strict=True):
                key = normalize(g.text)
                golds[key][g.qid] += 1
                scored.append((key, a.qid == g.qid, b.qid == g.qid, a.qid != b.qid))
        n = len(scored)
        d = {"mentions": n, "with_other_sets": round(100 * sum(s[1] for s in scored) / max(n, 1), 2),
             "without": round(100 * sum(s[2] for s in scored) / max(n, 1), 2)}  # fmt: skip
        # where the other sets taught a name, do they agree with this set's gold for it?
        for part in ("untaught", "agree", "conflict"):
            sel = [x for x in scored if _part(x[0], taught, golds) == part]
            d[part] = {
                "mentions": len(sel),
                "right_with": sum(x[1] for x in sel),
                "right_without": sum(x[2] for x in sel),
                "changed": sum(x[3] for x in sel),
            }
        drift[name] = d

    stored = [p for p in states.rglob("corrections.jsonl")]
    n_examples = sum(len(p.read_bytes().splitlines()) for p in stored)
    n_bytes = sum(p.stat().st_size for p in stored)
    refit = _refit_ms(args.bundle, states, args.threads)
    report = {
        "bundle": str(args.bundle),
        "curve": curve,
        "drift": drift,
        "corrections": taught_per_set,
        "cost": {
            "teach_ms_per_correction_median": _median(teach_ms),
            "refit_ms_median": _median(refit),
            "refit_ms_max": round(max(refit), 2) if refit else None,
            "bytes_per_stored_example": round(n_bytes / max(n_examples, 1)),
            "examples": n_examples,
        },
    }
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "curve.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(markdown(report))


PARTS = {
    "untaught": "names no other set taught",
    "agree": "names the other sets taught as this set's gold has them",
    "conflict": "names the other sets taught otherwise",
}


def _part(key: str, taught: dict, golds: dict) -> str:
    """Whether the other sets taught ``key`` (their most taught label) the way this set's
    gold has it at least half of the time."""
    if key not in taught:
        return "untaught"
    label = taught[key].most_common(1)[0][0]
    return "agree" if golds[key][label] * 2 >= sum(golds[key].values()) else "conflict"


def _examples(state_root: Path, bundle: Path):
    from xned.engine.state import Store, bundle_id

    return Store(state_root, bundle_id(bundle)).read()


def _refit_ms(bundle: Path, states: Path, threads: int | None) -> list[float]:
    """Refit time of every corrected key of every file's state."""
    from xned.engine.linker import Linker

    out = []
    for st in sorted(p for p in states.iterdir() if p.is_dir()):
        lk = Linker.load(bundle, threads=threads, state=st)
        assert lk.corrections is not None
        for key in lk.corrections.by_key:
            res = lk.corrections.model(key)
            if res is not None:
                out.append(res.seconds * 1000)
    return out


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[len(s) // 2], 2)


def markdown(r: dict) -> str:
    lines = [
        "| scope | corrections made before | mentions | accuracy with | without | delta |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scope, buckets in r["curve"].items():
        for b, v in buckets.items():
            lines.append(
                f"| {scope} | {b} | {v['mentions']} | {v['with']:.1f} | {v['without']:.1f} | "
                f"{v['with'] - v['without']:+.1f} |"
            )
    if r["drift"]:
        lines += ["", "| set | corrections taught | drift: accuracy with the other sets' corrections | without |",
                  "|---|---:|---:|---:|"]  # fmt: skip
    for name, d in r["drift"].items():
        lines.append(f"| {name} | {r['corrections'][name]} | {d['with_other_sets']:.1f} | {d['without']:.1f} |")
    if r["drift"]:
        lines += ["", "| mentions of each set | mentions | right with | right without | changed |"]
        lines += ["|---|---:|---:|---:|---:|"]
    for part, what in PARTS.items() if r["drift"] else ():
        t = {k: sum(d[part][k] for d in r["drift"].values()) for k in ("mentions", "right_with", "right_without")}
        changed = sum(d[part]["changed"] for d in r["drift"].values())
        lines.append(f"| {what} | {t['mentions']} | {t['right_with']} | {t['right_without']} | {changed} |")
    c = r["cost"]
    lines += [
        "",
        f"cost: teach {c['teach_ms_per_correction_median']} ms per correction (median, encoding included); "
        f"refit {c['refit_ms_median']} ms median, {c['refit_ms_max']} ms max per key; "
        f"{c['bytes_per_stored_example']} bytes per stored example ({c['examples']} examples)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
