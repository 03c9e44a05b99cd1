"""``xned eval``: linking quality on annotated data, per dataset, for every system variant.

Input: canonical JSONL (``{"id", "lang", "text", "mentions": [{"start", "end", "text",
"qid", "title"}]}``, see ``../shared/data/README.md``) or NIF Turtle (``.ttl``, the GERBIL
format: ``nif:Context`` documents, ``nif:Phrase`` mentions with ``itsrdf:taIdentRef`` to a
Wikidata entity or Wikipedia page; needs ``rdflib``).

Gold: a mention's ``qid``; else its English Wikipedia ``title`` mapped through ``--titles``
(title<TAB>qid); a mention with neither is NIL. A title that cannot be mapped counts as
in-KB gold that no system can get right (reported as ``unresolved``).

NED mode (gold spans given), from one analysis pass shared by all variants:

- ``recall@k``: gold among the candidates, over mentions with non-NIL gold;
- ``cands``: mean candidates per such mention (ambiguity);
- ``acc``: the top-ranked candidate is the gold, over non-NIL gold (in-KB accuracy; the NIL
  threshold is not applied here); ``acc|cand``: the same over mentions whose gold is a
  candidate;
- ``nil_p`` / ``nil_r``: precision/recall of NIL decisions (no candidate, or confidence
  below the threshold) against NIL gold, the data's NIL (a mention with no QID);
- ``absent``: mentions whose gold QID the bundle does not hold. For the bundle the right
  answer there is NIL too (NIL means "not in the KB", as in TAC-KBP): ``nil_p_bundle`` /
  ``nil_r_bundle`` and ``acc_nil_bundle`` count it so. A bundle that lacks most gold
  entities cannot reach a high data-NIL precision: its right NIL decisions are mostly on
  absent gold;
- ``acc+NIL``: fused decisions right over all mentions (the gold entity linked, or NIL for
  NIL gold; ``acc_nil_bundle``: or for absent gold); ``AUROC``: the probability that a right
  link scores above a wrong one, among the links made; ``AUROC (all)``: the same over every
  mention's best candidate, linked or not (the score as a ranking of all decisions: the
  threshold is one point on it); ``acc@80%``: the share of right links among the
  best-scored 80% of them (risk-coverage); ``ECE``: expected calibration error of the link
  scores (10 bins).

End-to-end mode (mentions detected by the linker, fused system): strong match, i.e. same
span and same QID, precision/recall/F1 over non-NIL links and non-NIL gold; and detection
alone (span match, every gold span, NIL too). With the alias-table detection always; with
the trained detector too where the bundle has one (``*_model`` columns, its own pass, timed
as ``detected_per_s_model``), side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine.decision import MentionFeatures
from xned.engine.linker import Analysis
from xned.engine.scoring import VARIANTS, Scorer, rank
from xned.errors import InputError
from xned.evalsets import EvalDoc, Gold, dataset_name, read_dataset
from xned.titles import load_titles

if TYPE_CHECKING:
    from xned.engine.linker import Linker


@dataclass
class Detected:
    """One detection mode's counts: end to end (span + QID, non-NIL), span only (NIL gold too)."""

    e2e_pred: int = 0
    e2e_gold: int = 0
    e2e_hit: int = 0
    det_pred: int = 0
    det_gold: int = 0
    det_hit: int = 0
    seconds: float = 0.0

    def add(self, o: Detected) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(o, f.name))

    def count(self, kind: str, pred: set[Any], gold: set[Any]) -> None:
        for name, n in (("pred", len(pred)), ("gold", len(gold)), ("hit", len(pred & gold))):
            setattr(self, f"{kind}_{name}", getattr(self, f"{kind}_{name}") + n)

    def summary(self, suffix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("e2e", "det"):
            pred, gold, hit = (getattr(self, f"{kind}_{x}") for x in ("pred", "gold", "hit"))
            if gold or pred:
                p, rec = (round(hit / pred, 4) if pred else None), (round(hit / gold, 4) if gold else None)
                f1 = round(2 * p * rec / (p + rec), 4) if p and rec else 0.0
                out.update({f"{kind}_p{suffix}": p, f"{kind}_r{suffix}": rec, f"{kind}_f1{suffix}": f1})
        if self.seconds:
            out[f"detected_per_s{suffix}"] = round(self.det_pred / self.seconds, 4)
        return out


@dataclass
class Stats:
    mentions: int = 0
    in_kb: int = 0
    nil: int = 0
    unresolved: int = 0
    in_cands: int = 0
    cand_total: int = 0
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VARIANTS, 0))
    nil_pred: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VARIANTS, 0))
    nil_hit: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VARIANTS, 0))
    # gold QIDs the bundle lacks, and the fused NIL decisions on NIL or absent gold
    absent: int = 0
    nil_hit_bundle: int = 0
    # detection counts per mode: "rules" (always), "model" (bundles with a trained detector)
    detection: dict[str, Detected] = field(default_factory=lambda: {"rules": Detected(), "model": Detected()})
    seconds: float = 0.0
    # reliability of the fused confidence of linked (non-NIL) decisions, in 10 bins
    cal_n: list[int] = field(default_factory=lambda: [0] * 10)
    cal_conf: list[float] = field(default_factory=lambda: [0.0] * 10)
    cal_right: list[int] = field(default_factory=lambda: [0] * 10)
    # every fused link (score, right) and the right fused decisions, links and NIL alike
    link_scores: list[tuple[float, bool]] = field(default_factory=list)
    decided_right: int = 0
    # every mention's best fused candidate (score, right), linked or NIL
    top_scores: list[tuple[float, bool]] = field(default_factory=list)

    def add(self, o: Stats) -> None:
        for k in ("mentions", "in_kb", "nil", "unresolved", "in_cands", "cand_total", "absent", "nil_hit_bundle"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        self.seconds += o.seconds
        for mode, counts in o.detection.items():
            self.detection[mode].add(counts)
        for d in ("correct", "nil_pred", "nil_hit"):
            for v in VARIANTS:
                getattr(self, d)[v] += getattr(o, d)[v]
        self.link_scores.extend(o.link_scores)
        self.top_scores.extend(o.top_scores)
        self.decided_right += o.decided_right
        for b in range(10):
            self.cal_n[b] += o.cal_n[b]
            self.cal_conf[b] += o.cal_conf[b]
            self.cal_right[b] += o.cal_right[b]

    def reliability(self) -> tuple[float | None, list[dict[str, Any]]]:
        """Expected calibration error of the fused confidence over linked decisions, and the
        table behind it (per confidence bin: decisions, mean confidence, share right)."""
        total = sum(self.cal_n)
        rows: list[dict[str, Any]] = [
            {
                "bin": f"{k / 10:.1f}-{(k + 1) / 10:.1f}",
                "links": n,
                "confidence": round(c / n, 4),
                "right": round(r / n, 4),
            }
            for k, (n, c, r) in enumerate(zip(self.cal_n, self.cal_conf, self.cal_right, strict=True))
            if n
        ]
        if not total:
            return None, rows
        ece = sum(row["links"] / total * abs(row["confidence"] - row["right"]) for row in rows)
        return round(ece, 4), rows

    def summary(self) -> dict[str, Any]:
        def r(a: float, b: float) -> float | None:
            return round(a / b, 4) if b else None

        out: dict[str, Any] = {
            "mentions": self.mentions,
            "in_kb": self.in_kb,
            "nil": self.nil,
            "absent": self.absent,
            "unresolved": self.unresolved,
            "recall": r(self.in_cands, self.in_kb),
            "cands": r(self.cand_total, self.in_kb),
            "mentions_per_s": r(self.mentions, self.seconds),
        }
        for v in VARIANTS:
            out[f"acc_{v}"] = r(self.correct[v], self.in_kb)
            out[f"acc_cand_{v}"] = r(self.correct[v], self.in_cands)
            out[f"nil_p_{v}"] = r(self.nil_hit[v], self.nil_pred[v])
            out[f"nil_r_{v}"] = r(self.nil_hit[v], self.nil)
        out["ece_fused"], out["reliability_fused"] = self.reliability()
        out["acc_nil_fused"] = r(self.decided_right, self.mentions)
        out["nil_p_bundle"] = r(self.nil_hit_bundle, self.nil_pred["fused"])
        out["nil_r_bundle"] = r(self.nil_hit_bundle, self.nil + self.absent)
        out["acc_nil_bundle"] = r(self.decided_right + self.nil_hit_bundle - self.nil_hit["fused"], self.mentions)
        out["auroc_fused"] = auroc(self.link_scores)
        out["auroc_all_fused"] = auroc(self.top_scores)
        curve = risk_coverage(self.link_scores, [c / 10 for c in range(1, 11)])
        out["acc80_fused"] = curve[7][1] if curve else None
        out["risk_coverage_fused"] = curve
        out.update(self.detection["rules"].summary(""))
        out.update(self.detection["model"].summary("_model"))
        return out


def auroc(scored: list[tuple[float, bool]]) -> float | None:
    """The probability that a right link scores above a wrong one (ties count half): the
    area under the ROC curve of the score, by the rank sum. None without both kinds."""
    right = sum(1 for _, ok in scored if ok)
    wrong = len(scored) - right
    if not right or not wrong:
        return None
    ordered = sorted(scored, key=lambda x: x[0])
    rank_sum = 0.0
    i = 0
    while i < len(ordered):  # average ranks over ties
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for _, ok in ordered[i:j] if ok)
        i = j
    return round((rank_sum - right * (right + 1) / 2) / (right * wrong), 4)


def accuracy_at_coverage(scored: list[tuple[float, bool]], coverage: float) -> float | None:
    """The share of right links among the best-scored ``coverage`` of them (risk-coverage:
    what an analyst who reads only the surest 80% of links sees)."""
    curve = risk_coverage(scored, [coverage])
    return curve[0][1] if curve else None


def risk_coverage(scored: list[tuple[float, bool]], coverages: list[float]) -> list[list[float]]:
    """``[coverage, accuracy_at_coverage]`` for each coverage, sorting the links once."""
    if not scored:
        return []
    right = np.cumsum([ok for _, ok in sorted(scored, key=lambda x: -x[0])])
    out = []
    for c in coverages:
        keep = max(1, round(c * len(scored)))
        out.append([c, round(float(right[keep - 1]) / keep, 4)])
    return out


def evaluate_docs(
    linker: Linker,
    docs: list[EvalDoc],
    *,
    end_to_end: bool = True,
    errors: int = 0,
    batch: int = 32,
    scorers: dict[str, Scorer] | None = None,
) -> tuple[Stats, list[dict[str, Any]]]:
    """Score ``docs``; returns the counts and up to ``errors`` sample errors (fused)."""

    if scorers is None:
        base = linker.scorer
        scorers = {v: Scorer(dict(base.weights), base.bias, base.threshold, v) for v in VARIANTS}
    st = Stats()
    samples: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i in range(0, len(docs), batch):
        chunk = docs[i : i + batch]
        inputs = [
            {"id": d.id, "lang": d.lang, "text": d.text, "mentions": [(g.start, g.end) for g in d.gold]} for d in chunk
        ]
        analyses = linker.analyze(inputs, given_spans=True, also_detect=end_to_end, detection="rules")
        if end_to_end and getattr(linker, "tagger", None) is not None:
            t1 = time.perf_counter()
            for d, res in zip(chunk, linker.analyze(inputs, given_spans=False, detection="model"), strict=True):
                if not isinstance(res, Analysis):
                    raise InputError(f"document {d.id}: {res.error}")
                _count_detected(st, "model", linker, d, res.mentions, scorers)
            st.detection["model"].seconds += time.perf_counter() - t1
        for d, res in zip(chunk, analyses, strict=True):
            if not isinstance(res, Analysis):
                raise InputError(f"document {d.id}: {res.error}")
            if end_to_end and res.detected is not None:
                _count_detected(st, "rules", linker, d, res.detected, scorers)
            for g, f in zip(d.gold, res.mentions, strict=True):
                _count_mention(st, linker, d.id, g, f, scorers, samples if len(samples) < errors else None)
    st.seconds = time.perf_counter() - t0 - st.detection["model"].seconds
    return st, samples


def _count_mention(
    st: Stats,
    linker: Linker,
    doc_id: str,
    g: Gold,
    f: MentionFeatures,
    scorers: dict[str, Scorer],
    samples: list[dict[str, Any]] | None,
) -> None:
    """Count one gold mention's candidates and each scorer's decision on it; a fused error
    joins ``samples`` (None: enough samples)."""
    st.mentions += 1
    qids = [linker.kb.qid(int(e)) for e in f.ents]
    absent = not g.nil and not g.unresolved and g.qid is not None and linker.kb.index(g.qid) < 0
    if g.nil:
        st.nil += 1
    else:
        st.in_kb += 1
        st.absent += int(absent)
        st.unresolved += int(g.unresolved)
        st.cand_total += len(qids)
        st.in_cands += int(g.qid in qids)
    for v, sc in scorers.items():
        link = linker.decide(f, sc, with_cands=False)
        top = None
        if len(f.ents):
            z, _ = sc.score(f.matrix(sc))
            top = qids[rank(z, f.priors, qids)[0]]
        if g.qid is not None and top == g.qid:  # unresolvable gold is never right
            st.correct[v] += 1
        if link.qid is None:
            st.nil_pred[v] += 1
            st.nil_hit[v] += int(g.nil)
            if v == "fused":
                st.decided_right += int(g.nil)
                st.nil_hit_bundle += int(g.nil or absent)
        elif v == "fused":
            k = min(int(link.score * 10), 9)
            right = not g.nil and link.qid == g.qid
            st.cal_n[k] += 1
            st.cal_conf[k] += link.score
            st.cal_right[k] += int(right)
            st.link_scores.append((float(link.score), right))
            st.decided_right += int(right)
        if v == "fused" and link.score is not None and top is not None:
            st.top_scores.append((float(link.score), g.qid is not None and top == g.qid))
        if v == "fused" and samples is not None and not g.nil and top != g.qid:
            samples.append(
                {
                    "doc": doc_id,
                    "mention": g.text,
                    "gold": g.qid or g.title,
                    "predicted": top,
                    "candidates": qids[:10],
                    "gold_in_candidates": g.qid in qids,
                }
            )


def _count_detected(
    st: Stats, mode: str, linker: Any, d: EvalDoc, detected: list[Any], scorers: dict[str, Scorer]
) -> None:
    """End-to-end (fused system, strong match: span + QID) and span-only detection counts."""
    pred = set()
    for f in detected:
        lk = linker.decide(f, scorers.get("fused", linker.scorer))
        if lk.qid is not None:
            pred.add((lk.start, lk.end, lk.qid))
    counts = st.detection[mode]
    counts.count("e2e", pred, {(g.start, g.end, g.qid) for g in d.gold if g.qid})
    counts.count("det", {(f.mention.start, f.mention.end) for f in detected}, {(g.start, g.end) for g in d.gold})


def evaluate(
    linker: Linker,
    paths: list[Path],
    *,
    titles: Path | None = None,
    end_to_end: bool = True,
    errors: int = 0,
    limit: int | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Per dataset, then micro-averaged per language and over everything."""
    title_map = load_titles(titles)
    rows: dict[str, Any] = {}
    total = Stats()
    by_lang: dict[str, Stats] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        docs = read_dataset(Path(path), title_map)[:limit]
        st, errs = evaluate_docs(linker, docs, end_to_end=end_to_end, errors=errors)
        name = dataset_name(path)
        rows[name] = st.summary()
        total.add(st)
        langs = {d.lang for d in docs if d.lang}
        lang = langs.pop() if len(langs) == 1 else "mixed"
        by_lang.setdefault(lang, Stats()).add(st)
        if errs:
            samples[name] = errs
        if log is not None:
            log(f"eval {name}: {st.mentions} mentions in {st.seconds:.0f} s")
    for lang in sorted(by_lang):
        rows[f"ALL {lang} (micro)"] = by_lang[lang].summary()
    rows["ALL (micro)"] = total.summary()
    return {"datasets": rows, "errors": samples}


def markdown(report: dict[str, Any]) -> str:
    cols = [
        ("mentions", "mentions", "{}"),
        ("in_kb", "with QID", "{}"),
        ("absent", "not in bundle", "{}"),
        ("recall", "recall@k", "{:.1%}"),
        ("cands", "cands", "{:.1f}"),
        ("acc_prior", "prior", "{:.1%}"),
        ("acc_similarity", "similarity", "{:.1%}"),
        ("acc_experts", "experts", "{:.1%}"),
        ("acc_fused", "fused", "{:.1%}"),
        ("acc_cand_fused", "fused\\|cand", "{:.1%}"),
        ("nil_p_fused", "NIL P", "{:.1%}"),
        ("nil_r_fused", "NIL R", "{:.1%}"),
        ("nil_p_bundle", "NIL P (bundle)", "{:.1%}"),
        ("nil_r_bundle", "NIL R (bundle)", "{:.1%}"),
        ("det_p", "det P", "{:.1%}"),
        ("det_r", "det R", "{:.1%}"),
        ("det_f1", "det F1", "{:.1%}"),
        ("e2e_p", "e2e P", "{:.1%}"),
        ("e2e_r", "e2e R", "{:.1%}"),
        ("e2e_f1", "e2e F1", "{:.1%}"),
        ("det_p_model", "model det P", "{:.1%}"),
        ("det_r_model", "model det R", "{:.1%}"),
        ("det_f1_model", "model det F1", "{:.1%}"),
        ("e2e_p_model", "model e2e P", "{:.1%}"),
        ("e2e_r_model", "model e2e R", "{:.1%}"),
        ("e2e_f1_model", "model e2e F1", "{:.1%}"),
        ("acc_nil_fused", "acc+NIL", "{:.1%}"),
        ("acc_nil_bundle", "acc+NIL (bundle)", "{:.1%}"),
        ("auroc_fused", "AUROC", "{:.3f}"),
        ("auroc_all_fused", "AUROC (all)", "{:.3f}"),
        ("acc80_fused", "acc@80%", "{:.1%}"),
        ("ece_fused", "ECE", "{:.3f}"),
        ("mentions_per_s", "mentions/s", "{:.0f}"),
        ("detected_per_s_model", "model detected/s", "{:.0f}"),
    ]
    rows = report["datasets"].values()
    cols = [c for c in cols if not c[0].endswith("_model") or any(r.get(c[0]) is not None for r in rows)]
    lines = ["| dataset | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in report["datasets"].items():
        cells = []
        for key, _, fmt in cols:
            val = row.get(key)
            cells.append("-" if val is None else fmt.format(val))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
