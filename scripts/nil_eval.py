"""How well NIL identities group unknown entities, on data where their identity is known.

On the evaluation protocol's bundle (``--supplement train``: a KB that lacks many gold
entities), every gold mention whose entity is not in the KB, that xned makes NIL and that is
a name (``nil.is_name``: pronouns and descriptions, which some sets annotate, get no
identity) is an unknown entity with a known QID. Their ``nil_id`` clusters are scored against the QIDs with
B-cubed precision/recall/F1 and CEAF-e, per language and overall, beside the naive baseline
(one cluster per normalized name), with how many mentions a promotion of the 20 largest
clusters would turn into right links.

The thresholds are chosen on the training files (``DATA/train``; none of them is evaluation
data): the best B-cubed F1 at precision >= 90%, and of the choices within half a point of it
the highest thresholds. They are then applied to ``DATA/eval``:

    python scripts/nil_eval.py ../shared/data --bundle build/eval-X/bundle-F --titles build/eval-X/titles.tsv
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xned.engine.linker import Analysis, Linker  # noqa: E402
from xned.engine.nil import NilMention, NilStore  # noqa: E402
from xned.engine.nil_names import plain_key  # noqa: E402
from xned.evalsets import dataset_name, read_dataset  # noqa: E402
from xned.titles import load_titles  # noqa: E402

BATCH = 16


def unknown_mentions(linker: Linker, files: list[Path], titles: dict[str, str]) -> dict[str, list]:
    """Per language: documents as (texts, ids, [(NilMention, gold QID)]) of the NIL decisions
    on gold mentions whose entity the KB lacks."""
    out: dict[str, list] = collections.defaultdict(list)
    for f in files:
        docs = read_dataset(f, titles)
        lang = dataset_name(f).rsplit(".", 1)[-1]
        for i in range(0, len(docs), BATCH):
            chunk = docs[i : i + BATCH]
            inputs = [
                {"id": d.id, "lang": d.lang, "text": d.text, "mentions": [(g.start, g.end) for g in d.gold]}
                for d in chunk
            ]
            for d, an in zip(chunk, linker.analyze(inputs, given_spans=True), strict=True):
                if not isinstance(an, Analysis):
                    continue
                items = []
                for g, f_ in zip(d.gold, an.mentions, strict=True):
                    if g.qid is None or linker.kb.index(g.qid) >= 0:
                        continue  # NIL in the data (identity unknown), or the KB has it
                    if linker.decide(f_, linker.scorer).qid is None:
                        items.append((NilMention(0, g.start, g.end, g.text, f_.vector), g.qid))
                if items:
                    out[lang].append((d.text, d.id, items))
    return out


def cluster(docs: list, threshold: float, short: float) -> list[tuple[str, str, str]]:
    """(gold QID, nil_id, normalized name) of every unknown mention, clustered in a fresh store."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="xned-nileval-") as tmp:
        store = NilStore(Path(tmp), threshold=threshold, short_threshold=short)
        for text, doc_id, items in docs:
            ids = store.assign([m for m, _ in items], [text], [doc_id])
            rows += [(q, ids[(0, m.start, m.end)], plain_key(m.text)) for m, q in items if (0, m.start, m.end) in ids]
        store.close()
    return rows


def bcubed(gold: list[str], pred: list[str]) -> tuple[float, float, float]:
    by_g, by_p = collections.Counter(gold), collections.Counter(pred)
    both = collections.Counter(zip(gold, pred, strict=True))
    p = sum(both[(g, c)] / by_p[c] for g, c in zip(gold, pred, strict=True)) / len(gold)
    r = sum(both[(g, c)] / by_g[g] for g, c in zip(gold, pred, strict=True)) / len(gold)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def ceaf_e(gold: list[str], pred: list[str]) -> float:
    gs, ps = collections.defaultdict(set), collections.defaultdict(set)
    for i, (g, c) in enumerate(zip(gold, pred, strict=True)):
        gs[g].add(i)
        ps[c].add(i)
    G, P = list(gs.values()), list(ps.values())
    sim = np.array([[2 * len(a & b) / (len(a) + len(b)) for b in P] for a in G])
    r, c = linear_sum_assignment(-sim)
    total = sim[r, c].sum()
    return 2 * total / (len(G) + len(P))


def promotion_gain(rows: list[tuple[str, str, str]], top: int = 20) -> int:
    """Mentions a promotion of the ``top`` largest clusters would link right: each promoted
    cluster becomes the entity most of its mentions are."""
    by = collections.defaultdict(list)
    for q, c, _ in rows:
        by[c].append(q)
    biggest = sorted(by.values(), key=len, reverse=True)[:top]
    return sum(collections.Counter(qs).most_common(1)[0][1] for qs in biggest)


def scores(rows: list[tuple[str, str, str]]) -> dict:
    gold = [q for q, _, _ in rows]
    pred = [c for _, c, _ in rows]
    names = [n for _, _, n in rows]
    p, r, f = bcubed(gold, pred)
    bp, br, bf = bcubed(gold, names)
    return {
        "mentions": len(rows),
        "entities": len(set(gold)),
        "b3_p": round(100 * p, 1),
        "b3_r": round(100 * r, 1),
        "b3_f1": round(100 * f, 1),
        "ceaf_e": round(100 * float(ceaf_e(gold, pred)), 1),
        "baseline_b3_p": round(100 * bp, 1),
        "baseline_b3_r": round(100 * br, 1),
        "baseline_b3_f1": round(100 * bf, 1),
        "baseline_ceaf_e": round(100 * float(ceaf_e(gold, names)), 1),
        "promote_top20_right_links": promotion_gain(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--titles", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    linker = Linker.load(args.bundle, threads=args.threads, use_corrections=False)
    titles = load_titles(args.titles)
    train = unknown_mentions(linker, sorted((args.data / "train").glob("*.jsonl")), titles)
    train_docs = [d for docs in train.values() for d in docs]
    grid = {}
    for t in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        for s in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01):
            if s >= t:
                grid[(t, s)] = scores(cluster(train_docs, t, s))
    # the best F1 at precision >= 90; of those within half a point of it, the highest
    # thresholds: the training documents hold few different people of one name, real text more
    ok = {k: v for k, v in grid.items() if v["b3_p"] >= 90.0} or grid
    best = max(v["b3_f1"] for v in ok.values())
    chosen = max((k for k, v in ok.items() if v["b3_f1"] >= best - 0.5), key=lambda k: (k[1], k[0]))
    print(f"train: {sum(len(d[2]) for d in train_docs)} unknown mentions; chosen threshold {chosen}: {grid[chosen]}")
    evald = unknown_mentions(linker, sorted((args.data / "eval").glob("*.jsonl")), titles)
    report = {"chosen": {"threshold": chosen[0], "short_threshold": chosen[1]}, "train": grid[chosen]}
    all_rows = []
    for lang, docs in sorted(evald.items()):
        rows = cluster(docs, *chosen)
        report[lang] = scores(rows)
        all_rows += [(f"{lang}:{q}", f"{lang}:{c}", n) for q, c, n in rows]
    report["ALL"] = scores(cluster([d for docs in evald.values() for d in docs], *chosen))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**report, "grid": {f"{t},{s}": v for (t, s), v in grid.items()}}, indent=2))


if __name__ == "__main__":
    main()
