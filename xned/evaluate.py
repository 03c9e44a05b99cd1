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
  below the threshold) against NIL gold;
- ``acc+NIL``: fused decisions right over all mentions (the gold entity linked, or NIL for
  NIL gold); ``AUROC``: the probability that a right link scores above a wrong one;
  ``acc@80%``: the share of right links among the best-scored 80% of them (risk-coverage);
  ``ECE``: expected calibration error of the link scores (10 bins).

End-to-end mode (mentions detected by the linker, fused system): strong match, i.e. same
span and same QID, precision/recall/F1 over non-NIL links and non-NIL gold; and detection
alone (span match, every gold span, NIL too). With the alias-table detection always; with
the trained detector too where the bundle has one (``*_model`` columns, its own pass, timed
as ``detected_per_s_model``), side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xned import jsonio
from xned.engine.scoring import VARIANTS, Scorer, rank
from xned.errors import InputError
from xned.titles import load_titles, title_key

MAX_LINE = 16 * 1024 * 1024


@dataclass
class Gold:
    start: int
    end: int
    text: str
    qid: str | None
    title: str | None = None
    unresolved: bool = False
    #: the mention says what it is ("qid" or "title" present, null for NIL); a gold set may
    #: leave it out for NIL, a file of corrections may not (``xned teach``)
    stated: bool = True

    @property
    def nil(self) -> bool:
        return self.qid is None and not self.unresolved


@dataclass
class EvalDoc:
    id: str
    lang: str | None
    text: str
    gold: list[Gold]


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

    def add(self, o: Stats) -> None:
        for k in ("mentions", "in_kb", "nil", "unresolved", "in_cands", "cand_total"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        self.seconds += o.seconds
        for mode, counts in o.detection.items():
            self.detection[mode].add(counts)
        for d in ("correct", "nil_pred", "nil_hit"):
            for v in VARIANTS:
                getattr(self, d)[v] += getattr(o, d)[v]
        self.link_scores.extend(o.link_scores)
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
        out["auroc_fused"] = auroc(self.link_scores)
        out["acc80_fused"] = accuracy_at_coverage(self.link_scores, 0.8)
        out["risk_coverage_fused"] = [
            [c / 10, accuracy_at_coverage(self.link_scores, c / 10)] for c in range(1, 11) if self.link_scores
        ]
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
    if not scored:
        return None
    keep = max(1, round(coverage * len(scored)))
    best = sorted(scored, key=lambda x: -x[0])[:keep]
    return round(sum(1 for _, ok in best if ok) / keep, 4)


def _gold(m: dict[str, Any], titles: dict[str, str], where: str, text: str) -> Gold:
    try:
        s, e = int(m["start"]), int(m["end"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}: mention without integer start/end: {str(m)[:120]}") from None
    if not 0 <= s < e <= len(text):
        raise InputError(f"{where}: mention span {s}:{e} is outside the text ({len(text)} characters)")
    qid = m.get("qid") or None
    title = m.get("title") or None
    for name, value in (("qid", qid), ("title", title)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: mention {s}:{e} has a {name} that is not a string: {str(value)[:60]}")
    unresolved = False
    if qid is None and title:
        qid = titles.get(title_key(title))
        unresolved = qid is None
    return Gold(s, e, text[s:e], qid, title, unresolved, "qid" in m or "title" in m)


def parse_line(raw: bytes, where: str, titles: dict[str, str], default_id: str) -> EvalDoc | None:
    """One canonical JSONL line (None when blank); ``InputError`` naming ``where``."""
    if len(raw) > MAX_LINE:
        raise InputError(f"{where}: line over {MAX_LINE} bytes")
    if not raw.strip():
        return None
    try:
        obj = jsonio.loads(raw)
    except jsonio.JSONError as exc:
        raise InputError(f"{where}: not a JSON document ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise InputError(f"{where}: expected an object with a string 'text'")
    text = obj["text"]
    ments = obj.get("mentions") or []
    if not isinstance(ments, list) or not all(isinstance(m, dict) for m in ments):
        raise InputError(f"{where}: 'mentions' must be a list of objects")
    gold = [_gold(m, titles, where, text) for m in ments]
    return EvalDoc(str(obj.get("id", default_id)), obj.get("lang"), text, gold)


def read_jsonl(path: Path, titles: dict[str, str]) -> Iterator[EvalDoc]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            doc = parse_line(raw, f"{path.name}:{lineno}", titles, f"{path.stem}/{lineno}")
            if doc is not None:
                yield doc


def read_nif(path: Path, titles: dict[str, str], lang: str | None = None) -> Iterator[EvalDoc]:
    """NIF 2.0 Turtle: contexts with ``nif:isString``, phrases with begin/end indices and
    ``itsrdf:taIdentRef`` (``wikidata.org/entity/Q..`` or a ``wikipedia.org/wiki/Title``)."""
    try:
        import rdflib
    except ImportError:
        raise InputError(f"{path}: reading NIF needs rdflib: pip install 'xned[eval]'") from None
    from urllib.parse import unquote

    nif = rdflib.Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
    its = rdflib.Namespace("http://www.w3.org/2005/11/its/rdf#")
    g = rdflib.Graph()
    try:
        g.parse(str(path), format="turtle")
    except Exception as exc:  # rdflib raises many parser exception types
        raise InputError(f"{path}: not valid Turtle ({str(exc)[:200]})") from None
    phrases: dict[Any, list[Gold]] = {}
    for ph in g.subjects(nif.referenceContext, None):
        ctx = g.value(ph, nif.referenceContext)
        s, e = g.value(ph, nif.beginIndex), g.value(ph, nif.endIndex)
        if s is None or e is None:
            continue
        ref_node = g.value(ph, its.taIdentRef)
        qid = title = None
        unresolved = False
        if ref_node is not None:
            ref = str(ref_node)
            if "wikidata.org/entity/" in ref:
                qid = ref.rsplit("/", 1)[1]
            elif "wikipedia.org/wiki/" in ref:
                title = unquote(ref.rsplit("/wiki/", 1)[1])
                qid = titles.get(title_key(title))
                unresolved = qid is None
        phrases.setdefault(ctx, []).append(
            Gold(int(str(s)), int(str(e)), "", qid if qid and qid[:1] == "Q" else None, title, unresolved)
        )
    for ctx in sorted(g.subjects(nif.isString, None), key=str):
        text = str(g.value(ctx, nif.isString))
        gold = sorted(phrases.get(ctx, []), key=lambda x: (x.start, x.end))
        for x in gold:
            if not 0 <= x.start < x.end <= len(text):
                raise InputError(f"{path}: phrase {x.start}:{x.end} outside its context {ctx}")
            x.text = text[x.start : x.end]
        yield EvalDoc(str(ctx), lang, text, gold)


def read_dataset(path: Path, titles: dict[str, str]) -> list[EvalDoc]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Evaluation file {path} not found.")
    name = path.name
    if name.endswith(".ttl"):
        return list(read_nif(path, titles))
    if name.endswith(".jsonl"):
        return list(read_jsonl(path, titles))
    raise InputError(f"{path}: unknown evaluation format; use canonical .jsonl or NIF .ttl")


def dataset_name(path: Path) -> str:
    name = Path(path).name
    for ext in (".jsonl", ".ttl"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def evaluate_docs(
    linker: Any,
    docs: list[EvalDoc],
    *,
    end_to_end: bool = True,
    errors: int = 0,
    batch: int = 32,
    scorers: dict[str, Scorer] | None = None,
) -> tuple[Stats, list[dict[str, Any]]]:
    """Score ``docs``; returns the counts and up to ``errors`` sample errors (fused)."""
    from xned.engine.linker import Analysis

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
                st.mentions += 1
                qids = [linker.kb.qid(int(e)) for e in f.ents]
                if g.nil:
                    st.nil += 1
                else:
                    st.in_kb += 1
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
                    elif v == "fused":
                        k = min(int(link.score * 10), 9)
                        right = not g.nil and link.qid == g.qid
                        st.cal_n[k] += 1
                        st.cal_conf[k] += link.score
                        st.cal_right[k] += int(right)
                        st.link_scores.append((float(link.score), right))
                        st.decided_right += int(right)
                    if v == "fused" and len(samples) < errors and not g.nil and top != g.qid:
                        samples.append(
                            {
                                "doc": d.id,
                                "mention": g.text,
                                "gold": g.qid or g.title,
                                "predicted": top,
                                "candidates": qids[:10],
                                "gold_in_candidates": g.qid in qids,
                            }
                        )
    st.seconds = time.perf_counter() - t0 - st.detection["model"].seconds
    return st, samples


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
    linker: Any,
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
        ("in_kb", "in-KB", "{}"),
        ("recall", "recall@k", "{:.1%}"),
        ("cands", "cands", "{:.1f}"),
        ("acc_prior", "prior", "{:.1%}"),
        ("acc_similarity", "similarity", "{:.1%}"),
        ("acc_experts", "experts", "{:.1%}"),
        ("acc_fused", "fused", "{:.1%}"),
        ("acc_cand_fused", "fused\\|cand", "{:.1%}"),
        ("nil_p_fused", "NIL P", "{:.1%}"),
        ("nil_r_fused", "NIL R", "{:.1%}"),
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
        ("auroc_fused", "AUROC", "{:.3f}"),
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
