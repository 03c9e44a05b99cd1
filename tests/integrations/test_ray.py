"""Batch linking on a local Ray cluster started in the test (2 CPUs, loopback)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("ray.data", reason="the ray extra is not installed")

from xned.export.kb.shards import ShardPlan  # noqa: E402
from xned.integrations.ray import link_dataset  # noqa: E402
from xned.records import doc_record  # noqa: E402
from xned.runner import LinkOptions, link_stream  # noqa: E402

SENTENCES = [
    ("en", "The capital Paris lies on the Seine in France."),
    ("es", "Madrid y Barcelona están en España."),
    ("ja", "東京は日本の首都です。"),
    ("en", "Michael Jordan played for the Chicago Bulls."),
]


def _rows(n):
    rows = [{"id": f"d{i:04d}", "text": SENTENCES[i % 4][1], "lang": SENTENCES[i % 4][0]} for i in range(n)]
    rows[7] = {"id": "d0007", "text": "Paris", "lang": "xx-nope"}  # a row that cannot be linked
    return rows


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _plain(mentions):
    """Ray's rows have every schema field: ``corrected`` and ``nil_id`` are null where a local
    record omits them."""
    return [{k: v for k, v in m.items() if not (k in ("corrected", "nil_id") and v is None)} for m in mentions]


def _local(rows, bundle_path):
    return {r.id: doc_record(r, False) for r in link_stream(rows, LinkOptions(bundle=str(bundle_path)))}


def test_rows_match_the_single_machine_run(cluster, bundle_path):
    rows = _rows(40)
    out = link_dataset(ray.data.from_items(rows), bundle=bundle_path, actors=2, batch_size=8).take_all()
    assert sorted(r["id"] for r in out) == [r["id"] for r in rows]  # one row per row
    local = _local(rows, bundle_path)
    for r in out:
        want = local[r["id"]]
        assert _plain(r["mentions"]) == want["mentions"] and r["error"] == want.get("error")
    bad = next(r for r in out if r["id"] == "d0007")
    assert "xx" in bad["error"] and bad["mentions"] == []


def _actor_pids():
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"LinkActor" in cmd:
                pids.append(int(p.name))
    return pids


def test_a_killed_actor_loses_and_duplicates_nothing(cluster, bundle_path):
    rows = _rows(120)
    ds = link_dataset(ray.data.from_items(rows), bundle=bundle_path, actors=2, batch_size=4)
    seen, killed = [], None
    for row in ds.iter_rows():
        seen.append(row["id"])
        if killed is None and len(seen) >= 12:
            pids = _actor_pids()
            assert pids, "no actor process found"
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
    assert killed is not None
    assert sorted(seen) == [r["id"] for r in rows]  # every row exactly once


def test_cli_engine_ray_writes_jsonl_in_input_order(cluster, bundle_path, tmp_path):
    from xned.cli.main import main

    src = tmp_path / "in.jsonl"
    rows = _rows(12)
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["link", "--engine", "ray", "-i", str(src), "-o", str(out), "--bundle", str(bundle_path), "-w", "2"])
    assert code == 1  # one row has an error: reported, not fatal
    lines = [json.loads(x) for f in sorted(out.glob("*.json*")) for x in f.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows]
    local = _local(rows, bundle_path)
    assert all(_plain(x["mentions"]) == local[x["id"]]["mentions"] for x in lines)


def test_cli_kb_build_on_ray_equals_the_local_build(cluster, tmp_path):
    """Sources and byte ranges of a Wikidata dump read as Ray tasks: the same KB, byte for byte."""
    from tests.integration.test_kb_shards import _files, make_sources
    from xned.cli.main import main

    sources = [str(p) for p in make_sources(tmp_path)]
    common = ["--no-vectors", "--titles", str(tmp_path / "none.tsv")]
    (tmp_path / "none.tsv").write_text("", encoding="utf-8")
    assert main(["kb", "build", *sources, "--bundle", str(tmp_path / "local"), *common]) == 0
    ray_args = ["--engine", "ray", "--shard-mb", "0.0005", "--work", str(tmp_path / "work")]
    assert main(["kb", "build", *sources, "--bundle", str(tmp_path / "ray"), *common, *ray_args]) == 0
    assert _files(tmp_path / "ray" / "kb") == _files(tmp_path / "local" / "kb")
    assert not list((tmp_path / "work").iterdir())  # the shards' files are gone


def _die_once(task):
    """Read a shard, but kill the worker process the first time each shard is tried."""
    from xned.export.kb.shards import read_shard

    marker = Path(task.work + ".tried")
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os._exit(1)  # as if the node died mid-task
    return read_shard(task)


def test_kb_build_survives_dying_tasks(cluster, tmp_path):
    from ray import cloudpickle

    from tests.integration.test_kb_shards import _files, make_sources
    from xned.export.kb.build import build_kb
    from xned.export.kb.shards import build_sharded
    from xned.integrations.ray import kb_runner

    cloudpickle.register_pickle_by_value(__import__(__name__))  # the workers cannot import tests/
    sources = make_sources(tmp_path)
    build_kb(sources, tmp_path / "local")
    work = tmp_path / "work"
    build_sharded(sources, tmp_path / "ray", ShardPlan(kb_runner(read=_die_once), work=work, shard_bytes=4000))
    assert len(list(work.glob("*.tried"))) >= 5  # every shard's first attempt died
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


def test_cli_experts_train_on_ray_equals_the_local_run(cluster, bundle_path, tmp_path):
    """Training contexts encoded by Ray actors: the same experts and calibration, byte for byte."""
    import shutil

    from tests.integration.test_experts_scale import _files, _scale
    from xned.cli.main import main

    scale = _scale()
    titles = tmp_path / "titles.tsv"
    dump = tmp_path / "wiki.xml"
    scale.make_wiki_dump(dump, 600, scale.bundle_targets(bundle_path, titles), median_words=60, redirects=50)
    runs = {}
    for engine in ("local", "ray"):
        b = tmp_path / engine
        shutil.copytree(bundle_path, b)
        args = ["experts", "train", str(dump), "--bundle", str(b), "--titles", str(titles), "--max-per-entity", "4"]
        assert main([*args, "--engine", engine]) == 0
        runs[engine] = _files(b)
    assert runs["ray"] == runs["local"]
    assert "experts/weights.npy" in runs["local"]
