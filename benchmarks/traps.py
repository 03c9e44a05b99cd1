"""The trap set: people named like countries, cities, companies and brands, each sentence
beside a control where the same name stands alone and must be linked.

    python benchmarks/traps.py [--bundle B] [--file benchmarks/traps.jsonl] [--json OUT]

``benchmarks/traps.jsonl`` (written for xned, no copied text) holds pairs in ten languages:
a trap ("Henry Ford was born on a farm in Michigan.", gold: the person, or null) and its
control ("Ford recalled forty thousand pickup trucks", gold: the company). Each sentence is
linked twice: end to end (mentions detected, ``--lang`` given) and with the gold span given.

Reported, per mode and language and overall:

- ``pieces_linked``: traps where a link overlapping the person's name goes to another
  entity than the person (the company, the city: a piece of the name, or a stranger);
- ``controls_linked``: controls whose name is linked to its gold entity, among those whose
  name finds the gold entity in the bundle's alias tables at all (``controls_in_kb``: the
  default bundle names companies in Latin script only, countries in every script);
- ``right_score`` / ``wrong_score``: the mean score of right and of wrong links, and their
  ``gap`` (a score is a promise: right links must score above wrong ones). Every wrong link
  scores above the NIL threshold, so this gap is bounded by how far right links rise above
  it;
- ``decision_gap``: the same over every decision on the name, linked or NIL: the score of
  its best candidate, right when that candidate is the gold entity (the score a NIL carries
  says how close it came to a link).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILE = Path(__file__).with_name("traps.jsonl")


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(linker: Any, docs: list[dict[str, Any]], given: bool, failures: list[str] | None = None) -> dict[str, Any]:
    """Per language and ``ALL``: the counts and rates above, for one mode. Each failed trap
    and control is appended to ``failures`` as one line, when given."""
    stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    scores: dict[str, dict[str, list[float]]] = collections.defaultdict(
        lambda: {"right": [], "wrong": [], "decision_right": [], "decision_wrong": []}
    )
    for doc in docs:
        gold = doc["mentions"][0]
        spans = [(gold["start"], gold["end"])] if given else None
        links = linker.link(doc["text"], lang=doc["lang"], mentions=spans, candidates=True)
        near = [lk for lk in links if lk.start < gold["end"] and gold["start"] < lk.end]
        over = [lk for lk in near if lk.qid]
        for key in (doc["lang"], "ALL"):
            for lk in near:
                if lk.candidates:
                    best = lk.candidates[0].qid
                    scores[key]["decision_right" if best == gold["qid"] else "decision_wrong"].append(lk.score)
            s = stats[key]
            if doc["kind"] == "trap":
                s["traps"] += 1
                wrong = [lk for lk in over if lk.qid != gold["qid"]]
                if wrong and failures is not None and key == "ALL":
                    pieces = ", ".join(f"{lk.text!r} -> {lk.qid} {lk.label} ({lk.score:.2f})" for lk in wrong)
                    failures.append(f"trap    {doc['lang']} {doc['text']!r}: {pieces}")
                s["pieces_linked"] += bool(wrong)
                for lk in over:
                    scores[key]["wrong" if lk.qid != gold["qid"] else "right"].append(lk.score)
            else:
                s["controls"] += 1
                found = [q for q, _, _ in linker.lookup(gold["text"], doc["lang"], 100)]
                if gold["qid"] not in found:  # the bundle cannot find this name: no control here
                    continue
                s["controls_in_kb"] += 1
                right = any(lk.qid == gold["qid"] for lk in over)
                if not right and failures is not None and key == "ALL":
                    got = ", ".join(f"{lk.text!r} -> {lk.qid} ({lk.score:.2f})" for lk in near) or "no mention"
                    failures.append(f"control {doc['lang']} {doc['text']!r} ({gold['qid']}): {got}")
                s["controls_linked"] += right
                for lk in over:
                    scores[key]["right" if lk.qid == gold["qid"] else "wrong"].append(lk.score)
    out: dict[str, Any] = {}
    for key, s in sorted(stats.items(), key=lambda kv: (kv[0] == "ALL", kv[0])):
        r, w = scores[key]["right"], scores[key]["wrong"]
        row: dict[str, Any] = dict(s)
        row["pieces_linked_rate"] = round(s["pieces_linked"] / max(s["traps"], 1), 3)
        row["controls_linked_rate"] = round(s["controls_linked"] / max(s["controls_in_kb"], 1), 3)
        row["right_score"] = round(sum(r) / len(r), 3) if r else None
        row["wrong_score"] = round(sum(w) / len(w), 3) if w else None
        row["gap"] = round(row["right_score"] - row["wrong_score"], 3) if r and w else None
        dr, dw = scores[key]["decision_right"], scores[key]["decision_wrong"]
        row["decision_gap"] = round(sum(dr) / len(dr) - sum(dw) / len(dw), 3) if dr and dw else None
        out[key] = row
    return out


def markdown(report: dict[str, dict[str, Any]]) -> str:
    lines = []
    for mode, rows in report.items():
        lines += [
            f"### {mode}",
            "",
            "| lang | traps | pieces linked | controls in KB | controls linked | right score | wrong score | gap "
            "| decision gap |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for lang, r in rows.items():
            lines.append(
                f"| {lang} | {r.get('traps', 0)} | {r.get('pieces_linked', 0)} ({r['pieces_linked_rate']:.1%}) | "
                f"{r.get('controls_in_kb', 0)} | {r.get('controls_linked', 0)} ({r['controls_linked_rate']:.1%}) | "
                f"{r['right_score']} | {r['wrong_score']} | {r['gap']} | {r['decision_gap']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=None, help="bundle (default: the embedded one)")
    ap.add_argument("--file", type=Path, default=FILE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    ap.add_argument("--failures", action="store_true", help="also list every failed trap and control")
    args = ap.parse_args(argv)
    from xned import Linker

    linker = Linker.load(args.bundle, threads=args.threads, use_corrections=False)
    docs = load(args.file)
    failed: dict[str, list[str]] = {"end to end": [], "given spans": []}
    report = {mode: evaluate(linker, docs, mode == "given spans", failed[mode]) for mode in failed}
    print(markdown(report))
    if args.failures:
        for mode, lines in failed.items():
            print(f"### failures, {mode}\n")
            print("\n".join(f"- {line}" for line in lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
