"""Sharded KB builds give the single-process KB byte for byte."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_dumps import XML, item
from tests.processes import kill_when
from xned.engine.kb import KB
from xned.errors import KBBuildError
from xned.export.kb.build import build_kb
from xned.export.kb.options import KBOptions
from xned.export.kb.shards import ShardPlan, build_sharded, local_runner, plan

ROOT = Path(__file__).resolve().parents[2]


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_sources(tmp_path):
    items = [
        item(f"Q{1000 + i}", f"Town {i}", f"Villa {i}", [f"T{i % 7}"], sites=("enwiki", "eswiki")) for i in range(60)
    ]
    items += [item("Q90", "Paris", "París", ["City of Light"], sites=("enwiki",))]
    items += [item("Q1003", "Town three (again)", aliases=["Thirdtown"])]  # a QID twice: the first label wins
    dump = tmp_path / "wd.json"
    dump.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n", encoding="utf-8")
    tsv = tmp_path / "extra.tsv"
    tsv.write_text(
        "Q1005\tQ5\tTown five from TSV\tanother description\t\tfr:Ville cinq|de~:Fünf\n"
        "Q77\tQ5\tSeventy\t\t\ten:Seventy\n"
    )
    counts = tmp_path / "anchors.counts.tsv"
    counts.write_text("en\tT3\tQ1003\t5\nen\tT3\tQ1010\t2\n")
    xml = tmp_path / "enwiki-pages-articles.xml"
    xml.write_text(XML.replace("[[Berlin|German capital]]", "[[Town 4|the fourth town]]"), encoding="utf-8")
    return [dump, tsv, counts, xml]


@pytest.fixture()
def sources(tmp_path):
    return make_sources(tmp_path)


@pytest.mark.parametrize(("shard_bytes", "workers"), [(700, 2), (1, 1), (10**9, 2)])
def test_sharded_build_is_byte_identical(sources, tmp_path, shard_bytes, workers):
    single, _ = build_kb(sources, tmp_path / "single", KBOptions(run_records=9))
    shards = plan(sources, shard_bytes)
    if shard_bytes < 10**9:
        assert len([s for s in shards if s[0] == 0]) > 5  # the dump really is cut into ranges
    sharded, report = build_sharded(
        sources,
        tmp_path / "sharded",
        ShardPlan(local_runner(workers), shard_bytes=shard_bytes),
        KBOptions(run_records=9),
    )
    assert _files(tmp_path / "sharded") == _files(tmp_path / "single")
    assert report.sources == [
        {"path": s.name, "records": r["records"]} for s, r in zip(sources, single["sources"], strict=True)
    ]
    kb = KB(tmp_path / "sharded")
    assert kb.record(kb.index("Q1003"))[0] == "Town 3"  # reading order kept across shards
    assert kb.lookup("en", "the fourth town")[0].size  # the Wikipedia shard resolved its link


def test_every_line_lands_in_exactly_one_range(sources):
    from xned.export.kb.wikidata import _range_lines

    dump = sources[0]
    data = dump.read_bytes()
    for size in (1, 50, 333, len(data)):
        got = [line for s in range(0, len(data), size) for line in _range_lines(dump, s, min(len(data), s + size))]
        assert b"".join(got) == data


def test_a_compressed_dump_is_one_shard_and_cannot_be_ranged(tmp_path):
    import bz2

    from xned.export.kb.builder import KBBuilder
    from xned.export.kb.wikidata import read_wikidata

    dump = tmp_path / "wd.json.bz2"
    dump.write_bytes(bz2.compress(b"[\n" + json.dumps(item("Q1", "One")).encode() + b"\n]\n"))
    assert plan([dump], 1) == [(0, dump, 0, None)]
    with pytest.raises(KBBuildError, match="decompress it to shard it"):
        read_wikidata(dump, KBBuilder(), byte_range=(0, 10))


def test_workers_cut_an_uncompressed_dump_into_one_range_per_worker(sources, tmp_path, monkeypatch):
    import bz2

    from typer.testing import CliRunner

    from xned.cli.main import app
    from xned.export.kb import shards

    dump = sources[0]
    size = dump.stat().st_size
    monkeypatch.setattr(shards, "LOCAL_MIN_SHARD", size)
    plan_ = shards.local_shards(sources, 3)
    assert plan_ is not None and plan_.shard_bytes == -(-size // 12)
    assert len([s for s in plan(sources, plan_.shard_bytes) if s[0] == 0]) == 12  # four per worker
    assert shards.local_shards(sources, 1) is None  # one process: nothing to share
    monkeypatch.setattr(shards, "LOCAL_MIN_SHARD", size + 1)
    assert shards.local_shards(sources, 3) is None  # too small to pay for the processes
    packed = tmp_path / "wd.json.bz2"
    packed.write_bytes(bz2.compress(dump.read_bytes()))
    monkeypatch.setattr(shards, "LOCAL_MIN_SHARD", 1)
    assert shards.local_shards([*sources, packed], 2) is None  # a compressed dump cannot be cut
    # the command line: --workers 2 reads two ranges in two processes, and builds the same KB
    tasks = []
    real = shards.local_runner

    def spy(workers):
        run = real(workers)
        return lambda batch: tasks.append(len(batch)) or run(batch)

    monkeypatch.setattr(shards, "local_runner", spy)
    runner = CliRunner()
    for workers in ("1", "2"):
        args = ["kb", "build", *map(str, sources[:3]), "--bundle", str(tmp_path / f"b{workers}"), "--no-vectors"]
        res = runner.invoke(app, [*args, "--workers", workers])
        assert res.exit_code == 0, res.output
    # --workers 1: three shards read here (the dump whole, the TSV, the counts: what --resume
    # keeps); --workers 2: the dump's eight ranges, the TSV and the counts in two processes
    assert [t for t in tasks if t] == [3, 10]
    assert _files(tmp_path / "b2" / "kb") == _files(tmp_path / "b1" / "kb")


def test_a_killed_worker_fails_the_build_with_a_clear_error_and_writes_nothing(tmp_path):
    """A decoding worker killed mid-build (out of memory, say): exit 1, one ``Error:`` line
    naming the fix, no traceback, no KB and no spilled runs left behind."""
    import gzip
    import os
    import subprocess
    import sys
    from pathlib import Path

    dump = tmp_path / "wd.json.gz"
    lines = [json.dumps(item(f"Q{i + 1}", f"Town {i}", f"Villa {i}", [f"T{i}", f"Burg {i}"])) for i in range(60_000)]
    dump.write_bytes(gzip.compress(("[\n" + ",\n".join(lines) + "\n]\n").encode(), compresslevel=1))
    spills = tmp_path / "tmp"
    spills.mkdir()
    env = {**os.environ, "TMPDIR": str(spills)}
    cmd = [sys.executable, "-m", "xned.cli.main", "kb", "build", str(dump), "--bundle", str(tmp_path / "b")]
    proc = subprocess.Popen([*cmd, "--no-vectors", "--workers", "2"], stderr=subprocess.PIPE, text=True, env=env)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if stat[1] == str(proc.pid) and b"spawn_main" in cmdline:
                time.sleep(0.5)  # let it take a chunk
                os.kill(int(pid), signal.SIGKILL)
                killed = int(pid)
                break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert killed is not None, "no worker process was seen"
    assert proc.returncode == 1, err
    assert "Error: A worker process of the build died" in err and "fewer --workers" in err
    assert "Traceback" not in err
    assert not (tmp_path / "b" / "kb").exists()
    assert not list(spills.iterdir())  # no spill or worker directory left behind


def _kb_build(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xned.cli.main", "kb", "build", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_killed_build_resumed_writes_the_same_kb(tmp_path):
    """kill -9 at three points of a build read in shards; --resume keeps the finished shards,
    reads the rest, and writes the KB of an uninterrupted build, byte for byte."""
    spec = importlib.util.spec_from_file_location("kb_scale", ROOT / "benchmarks" / "kb_scale.py")
    assert spec is not None and spec.loader is not None
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    dump = tmp_path / "latest-all.json"
    scale.make_dump(dump, 15_000)
    common = [str(dump), "--no-vectors", "--shard-mb", "0.5"]
    p = _kb_build(*common, "--bundle", str(tmp_path / "ref"))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    work = tmp_path / ".out.kb-build"
    n_shards = len(plan([dump], int(0.5 * 1024 * 1024)))
    assert n_shards >= 10
    kills = 0
    for target in (2, n_shards // 2, n_shards - 2):  # kill -9 once this many shards are finished
        p = _kb_build(*common, "--bundle", str(tmp_path / "out"), *(["--resume"] if kills else []))
        if not kill_when(p, lambda t=target: len(list(work.glob("shard*/done.json"))) >= t):
            break
        kills += 1
    assert kills >= 2
    p = _kb_build(*common, "--bundle", str(tmp_path / "out"))  # without --resume: refused, the shards kept
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and b"--resume" in err and (work / "plan.json").is_file()
    p = _kb_build(*common, "--bundle", str(tmp_path / "out"), "--resume")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert b"finished before" in err
    assert _files(tmp_path / "out" / "kb") == _files(tmp_path / "ref" / "kb")
    assert not work.exists()
