"""The evaluation protocol, one command: KB -> experts + calibration -> eval on every dev set.

    python scripts/eval_protocol.py ../shared/data --work build/eval [--source-lang en] [--seed 0]
        [--supplement all|train|none] [--holdout 0.2] [--encoder DIR] [--eval-glob "*.jsonl"]

DATA must hold ``kb/`` (Wikidata-keyed TSV extracts, ``dataset_entities.tsv``,
``enwiki_title_qid.tsv``), ``train/`` and ``eval/`` in the canonical JSONL format.

1. Title map (English Wikipedia title -> QID) from ``kb/enwiki_title_qid.tsv``, the titles in
   ``dataset_entities.tsv``, and English labels (a label shared by several entities maps to
   the one with at least twice the language labels of the next).
2. English anchors: mention -> entity counts from ``train/*.en.jsonl`` (title-only gold
   resolved through the map), without the documents held out for calibration, written as
   an alias-count TSV for the KB priors.
3. KB: ``xned kb build`` over every extract in ``kb/`` (incl. ``people_orgs_places2/``), the
   data-set supplement (``--supplement``: all rows, as the issue's reference pipeline; only
   QIDs seen in ``train/``; or none) and the anchors, with entity vectors from ``--encoder``.
4. Experts (``xned experts train``) on the ``--source-lang`` training files only; the fusion
   is calibrated on the held-out fraction of those documents with experts trained without
   them. The mention detector (``xned detector train``) on the ``--detector-train`` files
   in those languages.
5. ``xned eval`` on the files of ``eval/``; markdown + JSON in WORK.

Nothing from ``eval/`` is used before step 5. The KB of a (supplement, holdout, seed) is
reused by later runs (``--force`` rebuilds it). Everything built here stays under WORK:
several sources are NC.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kb_sources(data: Path, supplement: str, work: Path | None = None) -> list[Path]:
    """The KB extracts, plus the data-set supplement: ``all`` (every QID of train/ and eval/,
    as the issue's reference pipeline; it guarantees eval gold entities exist), ``train``
    (only QIDs that occur in train/, the honest variant) or ``none``."""
    kb = data / "kb"
    files = [kb / "merged_kb.tsv", kb / "people_orgs_places2" / "merged_people_orgs.tsv"]
    files += sorted((kb / "people_orgs_places2").glob("wof_admin_*.tsv"))
    ds = kb / "dataset_entities.tsv"
    if supplement == "all":
        files.append(ds)
    elif supplement == "train" and ds.is_file():
        assert work is not None
        wanted: set[str] = set()
        for path in sorted((data / "train").glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    for m in json.loads(line).get("mentions") or []:
                        if m.get("qid"):
                            wanted.add(m["qid"])
        out = work / "dataset_entities.train.tsv"
        with open(ds, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
            g.writelines(line for line in f if line.split("\t", 1)[0] in wanted)
        files.append(out)
    return [f for f in files if f.is_file()]


def build_titles(data: Path, out: Path) -> int:
    """title -> QID: the data's own title maps first, then English labels. A label shared by
    several entities maps to the one with the most language labels (a proxy for the number
    of Wikipedias, i.e. for which entity owns the plain title) when it has at least twice
    as many as the runner-up; otherwise it stays unmapped."""
    titles: dict[str, str] = {}
    by_label: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for src in kb_sources(data, "all"):
        with open(src, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) > 2 and parts[2]:
                    n_labels = parts[5].count("|") + 1 if len(parts) > 5 and parts[5] else 0
                    prev = by_label[parts[2]].get(parts[0], 0)
                    by_label[parts[2]][parts[0]] = max(prev, n_labels)
    for label, qids in by_label.items():
        ranked = sorted(qids.items(), key=lambda kv: -kv[1])
        if len(ranked) == 1 or ranked[0][1] >= 2 * max(ranked[1][1], 1):
            titles[label] = ranked[0][0]
    ds = data / "kb" / "dataset_entities.tsv"
    if ds.is_file():
        with open(ds, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) > 2 and parts[2] and not line.startswith("#"):
                    titles[parts[2]] = parts[0]
    with open(data / "kb" / "enwiki_title_qid.tsv", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and parts[1].startswith("Q"):
                titles[parts[0]] = parts[1]
    out.write_text("".join(f"{t}\t{q}\n" for t, q in sorted(titles.items())), encoding="utf-8")
    return len(titles)


def train_files(data: Path, source_langs: list[str]) -> list[Path]:
    return sorted(p for p in (data / "train").glob("*.jsonl") if p.name.split(".")[-2] in source_langs)


def build_anchors(files: list[Path], titles_tsv: Path, out: Path, holdout: float, seed: int) -> int:
    from xned.evalsets import read_jsonl
    from xned.export.training_docs import in_holdout
    from xned.titles import load_titles

    titles = load_titles(titles_tsv)
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for path in files:
        for doc in read_jsonl(path, titles):
            if in_holdout(doc.id, holdout, seed):
                continue
            for g in doc.gold:
                if g.qid:
                    counts[(doc.lang or "en", g.text, g.qid)] += 1
    lines = [f"{lang}\t{alias}\t{qid}\t{n}\n" for (lang, alias, qid), n in sorted(counts.items())]
    out.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "eval")
    ap.add_argument("--encoder", type=Path, default=ROOT / "xned" / "assets" / "default" / "encoder")
    ap.add_argument("--source-lang", default="en", help="comma-separated source languages of the experts")
    ap.add_argument("--supplement", choices=("all", "train", "none"), default="all")
    ap.add_argument("--holdout", type=float, default=0.2, help="train documents held out for calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--skip-experts", action="store_true")
    ap.add_argument(
        "--experts-source",
        choices=("train", "wiki", "none-wiki"),
        default="train",
        help="what the experts learn from: the train/ files, the source languages' Wikipedia dump samples "
        "(dumps/wiki_xml_dump_samples, links mapped by the title map), or none (none-wiki: the fusion alone, "
        "calibrated on those samples' links: the baseline of wiki)",
    )
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument(
        "--detector-train",
        default="elevant-oke-*,hipe-ajmc-train.*,wned-ace.*",
        help="train/ files (globs, --source-lang only) for the trained mention detector; '' = none. The "
        "default leaves out sets whose names are only partly marked (wned-aquaint, wned-wikipedia and "
        "wned-clueweb mark a subset of the names; wned-iitb also marks common nouns)",
    )
    ap.add_argument("--vectors", choices=("all", "ambiguous"), default="all", help="which entities to embed")
    ap.add_argument("--no-dense", action="store_true", help="no dense or name index (alias candidates only)")
    ap.add_argument("--names", action="store_true", help="with the name index (candidates by name, any script)")
    ap.add_argument("--no-stems", action="store_true", help="without the stem keys kb build writes (an A/B)")
    ap.add_argument(
        "--detector-wiki",
        action="store_true",
        help="also train the detector on the source languages' Wikipedia samples in dumps/ (links: partly marked)",
    )
    ap.add_argument("--limit", type=int, default=None, help="documents per eval file (smoke runs)")
    ap.add_argument("--eval-glob", default="*.jsonl", help="which files of eval/ to evaluate")
    ap.add_argument("--tag", default="", help="suffix for the report files")
    ap.add_argument(
        "--absent",
        type=float,
        default=0.3,
        help="also calibrate on this fraction of the held-out mentions without their gold entity in the KB",
    )
    args = ap.parse_args()
    data, work = args.data.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    src_langs = [x.strip() for x in args.source_lang.split(",") if x.strip()]
    log = lambda m: print(f"[protocol {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    timings: dict[str, float] = {}

    titles = work / "titles.tsv"
    if args.force or not titles.exists():
        log(f"title map: {build_titles(data, titles)} titles")
    # The KB depends on the supplement and the holdout split (held-out documents never feed
    # the anchor counts, so the calibration sees priors as the eval sets will).
    kb_tag = f"{args.supplement}-h{args.holdout:g}-s{args.seed}" + ("-vamb" if args.vectors == "ambiguous" else "")
    kb_bundle = work / f"kb-{kb_tag}"
    anchors = work / f"anchors-{kb_tag}.counts.tsv"
    if args.force or not (kb_bundle / "kb" / "meta.json").exists():
        n = build_anchors(train_files(data, ["en"]), titles, anchors, args.holdout, args.seed)
        log(f"anchors from English train files (held-out docs excluded): {n} (alias, entity) pairs")
        from xned.export.bundle_ops import BundleBuild, build_kb_into_bundle

        t = time.perf_counter()
        shutil.rmtree(kb_bundle, ignore_errors=True)
        options = BundleBuild(
            encoder=args.encoder, threads=args.threads, vector_cache=work / "vector-cache", vectors=args.vectors
        )
        meta, report = build_kb_into_bundle([*kb_sources(data, args.supplement, work), anchors], kb_bundle, options)
        timings["kb_build_s"] = round(time.perf_counter() - t, 1)
        log(f"KB: {meta['entities']} entities in {timings['kb_build_s']} s; warnings {dict(report.counts)}")
        prov = json.loads((kb_bundle / "manifest.json").read_text(encoding="utf-8"))["provenance"]["kb"]
        log(f"entity vectors: {prov['vectors']}, {prov.get('vector_stats')}")
    missing = {k: not (kb_bundle / "kb" / f"{k}.usearch").exists() for k in ("dense", "names")}
    missing["names"] &= args.names
    if not args.no_dense and any(missing.values()):
        from xned.export.bundle_ops import index_bundle

        info = index_bundle(kb_bundle, **missing, threads=args.threads, vector_cache=work / "vector-cache", log=log)
        for k, v in info.items():
            timings[f"{k}_s"] = v["seconds"]
            log(f"{k}: {v}")
    if not args.no_stems and not list((kb_bundle / "kb" / "aliases").glob("*/stem.json")):
        from xned.engine.stems import STEM_LANGS
        from xned.export.bundle_ops import index_bundle

        log(f"stem keys (a KB cached from before them): {index_bundle(kb_bundle, dense=False, stems=STEM_LANGS)}")
    tag = args.tag or f"{kb_tag}-{'+'.join(src_langs)}"
    bundle = work / f"bundle-{tag}"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(kb_bundle, bundle, copy_function=os.link)  # hard links: the KB is read-only here
    if args.no_dense or not args.names or args.no_stems:
        from xned.export.kb.stems import write_all_stems
        from xned.export.manifest import update_manifest

        gone = () if args.names and not args.no_dense else ("names.usearch", "names_mean.npy")
        gone += ("dense.usearch", "dense_mean.npy") if args.no_dense else ()
        for name in gone:
            (bundle / "kb" / name).unlink(missing_ok=True)
        if args.no_stems:  # the files are hard links: write_stems unlinks them, the KB keeps its own
            write_all_stems(bundle / "kb" / "aliases", {})
        update_manifest(bundle)
    if not args.skip_experts:
        from xned.export.experts.train import train_experts

        t = time.perf_counter()
        wiki_samples = sorted(
            p for lang in src_langs for p in (data / "dumps" / "wiki_xml_dump_samples").glob(f"{lang}wiki-*.bz2")
        )
        if args.experts_source != "train" and not wiki_samples:
            raise SystemExit(f"--experts-source {args.experts_source}: no {src_langs} Wikipedia samples in {data}")
        if args.experts_source == "none-wiki":
            from xned.export.experts.anchors import calibrate_on_anchors

            info = calibrate_on_anchors(bundle, wiki_samples, threads=args.threads, absent=args.absent, log=log)
        else:
            info = train_experts(
                bundle,
                wiki_samples if args.experts_source == "wiki" else train_files(data, src_langs),
                titles=titles,
                source_langs=src_langs,
                seed=args.seed,
                holdout=args.holdout,
                threads=args.threads,
                absent=args.absent,
                log=log,
            )
        timings["experts_s"] = round(time.perf_counter() - t, 1)
        log(f"experts: {json.dumps(info)}")
    det_files = sorted(
        {p for g in args.detector_train.split(",") if g.strip() for p in (data / "train").glob(g.strip())}
        & set(train_files(data, src_langs))
    )
    if args.detector_wiki:  # the source languages' Wikipedia samples: links as partly marked names
        det_files += sorted(
            p
            for lang in src_langs
            for p in (data / "dumps" / "wiki_xml_dump_samples").glob(f"{lang}wiki-latest-pages-articles*.bz2")
        )
    if det_files:
        from xned.export.detector.train import train_detector

        t = time.perf_counter()
        info = train_detector(bundle, det_files, source_langs=src_langs, seed=args.seed, threads=args.threads, log=log)
        timings["detector_s"] = round(time.perf_counter() - t, 1)
        log(f"detector: {json.dumps(info)}")
    wiki = sorted((data / "dumps" / "wiki_xml_dump_samples").glob("*wiki-latest-pages-articles*.bz2"))
    if wiki:  # how far an analyst's correction carries (xned experts reach; no labels used)
        from xned.export.experts.reach import measure_reach

        measure_reach(bundle, wiki, threads=args.threads, log=log)
    from xned.engine.linker import Linker
    from xned.evaluate import evaluate, markdown

    linker = Linker.load(bundle, threads=args.threads, use_corrections=False)
    t = time.perf_counter()
    report = evaluate(
        linker,
        sorted((data / "eval").glob(args.eval_glob)),
        titles=titles,
        end_to_end=not args.skip_e2e,
        limit=args.limit,
        log=log,
    )
    timings["eval_s"] = round(time.perf_counter() - t, 1)
    report["timings"] = timings
    report["config"] = {
        "dense": not args.no_dense,
        "names": args.names and not args.no_dense,
        "supplement": args.supplement,
        "source_langs": src_langs,
        "seed": args.seed,
        "holdout": args.holdout,
        "detector_train": [p.name for p in det_files],
        "experts_source": args.experts_source,
    }
    (work / f"report-{tag}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (work / f"report-{tag}.md").write_text(markdown(report) + "\n", encoding="utf-8")
    print(markdown(report))
    log(f"done: {timings}")


if __name__ == "__main__":
    main()
