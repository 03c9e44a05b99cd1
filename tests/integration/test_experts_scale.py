"""``experts train`` on a Wikipedia dump: memory follows the KB and ``--max-per-entity``, not
the dump. With 10x more articles (the same entities, the same redirects) peak RSS stays
within 10%, and the encoder sees only the mentions the per-entity reservoir takes, so its
work grows with the logarithm of the dump, not with it. A run killed with SIGKILL at
several points and resumed writes the bundle an uninterrupted run writes, byte for byte."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.processes import kill_when
from xned.engine.kb import KB
from xned.export.experts.train import wanted_entities

ROOT = Path(__file__).resolve().parents[2]


def _scale():
    spec = importlib.util.spec_from_file_location("wiki_scale", ROOT / "benchmarks" / "wiki_scale.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(scale, bundle: Path, dump: Path, titles: Path) -> dict:
    cmd = [sys.executable, "-c", scale.TRAIN, str(bundle), str(dump), str(titles), "4", "1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_and_encoding_do_not_grow_with_the_dump(tmp_path, bundle_path):
    scale = _scale()
    titles = tmp_path / "titles.tsv"
    targets = scale.bundle_targets(bundle_path, titles)
    assert any(amb for _, _, amb in targets)
    runs = {}
    for n in (500, 5000):
        dump = tmp_path / f"wiki-{n}.xml"
        scale.make_wiki_dump(dump, n, targets, median_words=60, redirects=200, seed=1)
        bundle = tmp_path / f"b{n}"
        shutil.copytree(bundle_path, bundle)
        runs[n] = _run(scale, bundle, dump, titles)
        assert (bundle / "experts" / "meta.json").is_file()
    small, big = runs[500], runs[5000]
    assert big["summary"]["docs"] > 9 * small["summary"]["docs"]  # articles with a link
    assert big["summary"]["mentions"] > 8 * small["summary"]["mentions"]
    # the reservoir (4 per entity) decides before encoding: 10x the mentions, far fewer than
    # 10x encoded (about 4 * (1 + ln(n / 4)) per entity)
    assert big["summary"]["encoded"] < 3 * small["summary"]["encoded"], runs
    assert big["peak_rss_kb"] < 1.10 * small["peak_rss_kb"], runs


def test_only_entities_an_expert_can_have_are_wanted(bundle_path):
    kb = KB(bundle_path / "kb")
    wanted = wanted_entities(kb)
    mercury = [kb.index(q) for q in ("Q308", "Q925", "Q15869")]
    assert all(wanted[e] for e in mercury)  # "Mercury" names all three
    assert not wanted[kb.index("Q1490")]  # Tokyo: its only alias names it alone
    for table, offset in kb.tables_for(None):  # every wanted entity shares an alias
        for kid in range(len(table)):
            ents, _ = table.by_id(kid)
            if len(ents) >= 2:
                assert wanted[ents.astype(int) + offset].all()


def _train(dump: Path, bundle: Path, titles: Path, *extra: str) -> subprocess.Popen:
    args = ["experts", "train", str(dump), "--bundle", str(bundle), "--titles", str(titles), "--max-per-entity", "4"]
    args += ["--calibration-docs", "50", "--checkpoint-every", "0", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "xned.cli.main", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _consumed(state: Path) -> int:
    """Documents the last checkpoint says were consumed (0 before the first)."""
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["consumed"])
    except (OSError, ValueError, KeyError):
        return 0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_killed_run_resumed_writes_the_same_bytes(tmp_path, bundle_path):
    scale = _scale()
    titles = tmp_path / "titles.tsv"
    targets = scale.bundle_targets(bundle_path, titles)
    dump = tmp_path / "wiki.xml"
    scale.make_wiki_dump(dump, 12_000, targets, median_words=60, redirects=200, seed=2)
    ref, out = tmp_path / "ref", tmp_path / "out"
    shutil.copytree(bundle_path, ref)
    shutil.copytree(bundle_path, out)
    p = _train(dump, ref, titles)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    state = tmp_path / ".out.experts-checkpoint" / "state.json"
    kills = 0
    for target in (1000, 5000, 9000):  # kill -9 once past each of these documents
        p = _train(dump, out, titles, *(["--resume"] if kills else []))
        if not kill_when(p, lambda t=target: _consumed(state) >= t):
            break
        kills += 1
    assert kills >= 2
    p = _train(dump, out, titles)  # without --resume: refuses to drop the interrupted run
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and b"--resume" in err
    p = _train(dump, out, titles, "--resume")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert b"resuming after" in err
    assert _files(out) == _files(ref)
    assert not state.parent.exists()


def test_a_run_that_fails_on_its_input_leaves_no_checkpoint(tmp_path, bundle_path):
    from xned.cli.main import main

    data = tmp_path / "train.en.jsonl"
    doc = {"id": "d", "lang": "en", "text": "Gotham is far.", "mentions": [{"start": 0, "end": 6, "qid": "Q999999999"}]}
    data.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    bundle = tmp_path / "b"
    shutil.copytree(bundle_path, bundle)
    for _ in range(2):  # the second run fails the same way: no checkpoint refuses it
        assert main(["experts", "train", str(data), "--bundle", str(bundle), "--checkpoint-every", "0"]) == 1
        assert not (tmp_path / ".b.experts-checkpoint").exists()
