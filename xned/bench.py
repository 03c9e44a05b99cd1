"""``xned bench``: throughput, latency, start-up and memory of linking, measured in one run.

Every figure comes from the same corpus in the same run, so ratios hold on a noisy machine:

- **cold start**: wall time and peak RSS of ``xned link TEXT`` (the first document) in a
  fresh process, to its first output (median of ``repeat``);
- **throughput, 1 and N workers**: ``xned link -i CORPUS -o FILE --workers W`` in a fresh
  process, whole process (start-up included), mentions/s and docs/s (median of ``repeat``),
  with the peak RSS and PSS of every process of the run (the parent and each worker),
  sampled from ``/proc`` every 50 ms;
- **warm latency**: p50/p95 of one ``Linker.link`` per document in a loaded process;
- **prior-only floor**: the same corpus in a loaded process with ``variant="prior"`` (no
  encoder): the upper bound the pipeline can reach around the encoder;
- **detection** (bundles with a trained detector, detected mentions): warm mentions/s with
  the trained detector (the default) and with the rule-based detection, interleaved.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from xned.engine.linker import Linker
from xned.engine.session import cpu_int8_flags, device_providers
from xned.errors import InputError
from xned.records import read_documents
from xned.types import DocResult

SAMPLE_DOCS = [
    ("en", "Paris Hilton stayed at a hotel in Paris before flying to Tokyo and Berlin."),
    ("es", "El presidente visitó Madrid, Barcelona y Zúrich antes de volar a Nueva York."),
    ("ja", "パリス・ヒルトンは東京と京都のホテルに泊まった。"),
    ("en", "Washington crossed the Delaware with his army while Georgia voted."),
    ("es", "Amazon y Sony abrieron oficinas en Berlín y Lisboa."),
    ("en", "Freddie Mercury sang with Queen; Mercury is the smallest planet."),
]


def load_corpus(paths: list[Path], limit: int) -> list[dict[str, Any]]:
    """Documents from canonical JSONL or text files (or the built-in sentences), read by the
    same reader as ``xned link`` (``records.read_documents``); a line it cannot read is an
    ``InputError`` naming it: a benchmark of broken input measures nothing."""

    if not paths:
        return [{"id": str(i), "lang": lang, "text": text} for i, (lang, text) in enumerate(SAMPLE_DOCS)]
    docs: list[dict[str, Any]] = []
    for path in paths:
        with open(path, "rb") as f:
            for rec in read_documents(f, "auto", Path(path).name):
                if isinstance(rec, DocResult):
                    raise InputError(f"{rec.error} (xned bench needs every document readable)")
                rec.pop("line", None)
                docs.append(rec)
                if len(docs) >= limit:
                    return docs
    return docs


class _MemorySampler:
    """Peak RSS and PSS (kB) of a process and its descendants, from /proc."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid = pid
        self.every = every
        self.peaks: dict[int, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as f:
                        fields = dict(line.split(":", 1) for line in f if ":" in line and not line[0].isdigit())
                except OSError:
                    continue
                rss = int(fields.get("Rss", "0 kB").split()[0])
                pss = int(fields.get("Pss", "0 kB").split()[0])
                peak = self.peaks.setdefault(pid, {"rss_kb": 0, "pss_kb": 0})
                peak["rss_kb"] = max(peak["rss_kb"], rss)
                peak["pss_kb"] = max(peak["pss_kb"], pss)
            self._stop.wait(self.every)


def _xned(args: list[str]) -> tuple[float, dict[int, dict[str, int]], str]:
    """Run ``xned ARGS`` in a fresh process: wall seconds, per-process memory peaks, stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xned.cli.main", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with _MemorySampler(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"xned {' '.join(args[:3])} ... failed: {err.decode(errors='replace')[-500:]}")
    return wall, dict(mem.peaks), out.decode("utf-8", "replace")


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def run_bench(
    bundle: Path | None,
    inputs: list[Path],
    *,
    repeat: int = 3,
    limit: int = 500,
    workers: int = 2,
    given_spans: bool = False,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """``xned bench``: the cold start of one text, whole ``xned link`` processes over the
    corpus (one and ``workers`` workers, interleaved), and a warm process's latency and
    throughput; medians of ``repeat`` runs, with the load average before and after."""
    docs = load_corpus(inputs, limit)
    if not docs:
        raise ValueError("the benchmark corpus is empty")
    common = (["--bundle", str(bundle)] if bundle is not None else []) + ["--device", device]
    result: dict[str, Any] = {"documents": len(docs), "given_spans": given_spans, "repeat": repeat}
    if given_spans:
        result["mentions_given"] = sum(len(d.get("mentions") or []) for d in docs)
    result["loadavg_before"] = os.getloadavg()[0]
    result |= _cold_start(docs[0], common, repeat)
    result["device"] = device
    result["cpu_int8_flags"] = cpu_int8_flags()
    result |= _processes(docs, common, repeat, workers, given_spans, threads)
    result |= _warm(bundle, docs, repeat, given_spans, threads, device)
    result["loadavg_after"] = os.getloadavg()[0]
    return result


def _cold_start(first: dict[str, Any], common: list[str], repeat: int) -> dict[str, Any]:
    """The README's main command shape: one text argument, to its first output."""
    lang = ["--lang", first["lang"]] if first.get("lang") else []
    cold = [_xned(["link", first["text"], "-f", "jsonl", *lang, *common]) for _ in range(repeat)]
    return {
        "cold_start_s": round(statistics.median(c[0] for c in cold), 3),
        "cold_start_peak_rss_mb": _mb(int(statistics.median(max(p["rss_kb"] for p in c[1].values()) for c in cold))),
    }


def _processes(
    docs: list[dict[str, Any]], common: list[str], repeat: int, workers: int, given_spans: bool, threads: int | None
) -> dict[str, Any]:
    """Whole ``xned link -i -o`` processes with 1 and ``workers`` workers, interleaved (load
    from other processes hits both alike): mentions/s, documents/s, peak memory per process."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xned-bench-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        out = Path(tmp) / "out.jsonl"
        runs: dict[int, list[tuple[float, dict[int, dict[str, int]], int]]] = {1: [], workers: []}
        for _ in range(repeat):
            for w in sorted(runs):
                args = ["link", "-i", str(corpus), "-o", str(out), "-f", "jsonl", "-q", "--force", "--workers", str(w)]
                args += ["--given-spans"] if given_spans else []
                args += ["--threads", str(threads)] if threads and w == 1 else []
                wall, peaks, _ = _xned(args + common)
                with open(out, encoding="utf-8") as f:
                    n_mentions = sum(len(json.loads(line)["mentions"]) for line in f)
                runs[w].append((wall, peaks, n_mentions))
    for w, rs in runs.items():
        wall = statistics.median(r[0] for r in rs)
        key = f"workers_{w}"
        result[f"{key}_mentions_per_s"] = round(rs[0][2] / wall, 1)
        result[f"{key}_docs_per_s"] = round(len(docs) / wall, 1)
        result[f"{key}_wall_s"] = round(wall, 2)
        procs = sorted(rs[0][1].values(), key=lambda p: -p["rss_kb"])
        result[f"{key}_peak_rss_mb_per_process"] = [_mb(p["rss_kb"]) for p in procs]
        result[f"{key}_peak_pss_mb_per_process"] = [_mb(p["pss_kb"]) for p in procs]
    result["mentions_linked"] = runs[1][0][2]
    result["workers_speedup"] = round(
        result[f"workers_{workers}_mentions_per_s"] / result["workers_1_mentions_per_s"], 2
    )
    return result


def _warm(
    bundle: Path | None,
    docs: list[dict[str, Any]],
    repeat: int,
    given_spans: bool,
    threads: int | None,
    device: str = "cpu",
) -> dict[str, Any]:
    """A warm process: per-document latency, mentions/s, the prior-only floor and, where the
    bundle has a trained detector, detection by it against the rules (interleaved)."""

    def timed(lk: Linker, batch: list[dict[str, Any]], given: bool) -> tuple[float, int]:
        t = time.perf_counter()
        n = sum(len(r.links) for r in lk.link_batch(batch, given_spans=given))
        return time.perf_counter() - t, n

    linker = Linker.load(bundle, threads=threads, use_corrections=False, providers=device_providers(device))
    timed(linker, docs[:1], given_spans)
    lat = sorted(timed(linker, [d], given_spans)[0] for _ in range(repeat) for d in docs)
    result: dict[str, Any] = {
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 2),
        "latency_p95_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.95))], 2),
    }
    # no encoder at all for the floor: alias-table detection (a trained detector would need it)
    prior = Linker.load(bundle, threads=threads, variant="prior", use_corrections=False, detection="rules")
    for name, lk in (("warm_mentions_per_s", linker), ("prior_only_floor_mentions_per_s", prior)):
        runs = [timed(lk, docs, given_spans) for _ in range(repeat)]
        result[name] = round(runs[0][1] / statistics.median(r[0] for r in runs), 1)
    if not given_spans and linker.tagger is not None:
        rules = Linker.load(bundle, threads=threads, use_corrections=False, detection="rules")
        walls: dict[str, list[float]] = {"model": [], "rules": []}
        found: dict[str, int] = {}
        for _ in range(repeat):
            for name, lk in (("model", linker), ("rules", rules)):
                wall, found[name] = timed(lk, docs, False)
                walls[name].append(wall)
        for name, ws in walls.items():
            result[f"warm_{name}_detection_mentions_per_s"] = round(found[name] / statistics.median(ws), 1)
            result[f"warm_{name}_detection_mentions"] = found[name]
    result["bundle"] = str(linker.root)
    result["providers"] = linker.encoder.providers_in_use if linker.encoder is not None else []
    return result
