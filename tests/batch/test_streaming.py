"""Batch linking: bounded memory, worker pool order, exactly-once resume after SIGKILL,
output-path safety and input decoding."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import kill_when
from xned.records import read_documents
from xned.runner import LinkOptions, link_stream

ROOT = Path(__file__).resolve().parents[2]


def _docs(n: int):
    for i in range(n):
        yield {"id": str(i), "lang": "en", "text": f"Doc {i}: Tokyo and Berlin, then Paris Hilton in Paris."}


_RSS_CHILD = """
import resource, sys
from xned.cli.main import main
rc = main(["link", "-i", sys.argv[1], "-o", sys.argv[2], "-f", "jsonl", "-q", "-b", sys.argv[3], "--given-spans"])
assert rc == 0, rc
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kb(tmp_path: Path, bundle_path: Path, n: int) -> int:
    """Peak RSS of ``xned link -i -o`` over ``n`` documents whose mentions need the encoder
    (several candidates each), in a fresh process; the output holds every document."""
    src, out = tmp_path / f"in{n}.jsonl", tmp_path / f"out{n}.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for i in range(n):
            text = f"Doc {i}: the flight from Paris landed near Mercury."
            a, b = text.index("Paris"), text.index("Mercury")
            f.write(json.dumps({"id": str(i), "lang": "en", "text": text, "mentions": [[a, a + 5], [b, b + 7]]}) + "\n")
    cmd = [sys.executable, "-c", _RSS_CHILD, str(src), str(out), str(bundle_path)]
    p = subprocess.run(cmd, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with open(out, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert [r["id"] for r in rows] == [str(i) for i in range(n)]
    assert all(len(r["mentions"]) == 2 for r in rows)
    assert sum(r["mentions"][0]["qid"] == "Q90" for r in rows) >= 0.99 * n
    assert len({r["mentions"][0]["score"] for r in rows}) > 1  # scored in context: the encoder ran
    return int(p.stdout)


def test_stream_memory_does_not_grow_with_the_input(tmp_path, bundle_path):
    small = _peak_rss_kb(tmp_path, bundle_path, 3_000)
    large = _peak_rss_kb(tmp_path, bundle_path, 30_000)
    assert large - small < 8_000, (small, large)  # kB: 10x the documents, same memory


def test_workers_give_the_single_process_result_in_order(bundle_path):
    docs = list(_docs(150)) + [{"id": "bad", "text": "", "lang": "en"}]
    opts = LinkOptions(bundle=str(bundle_path))
    one = list(link_stream(iter(docs), opts, workers=1, batch_size=16))
    two = list(link_stream(iter(docs), opts, workers=2, batch_size=16))
    assert [r.id for r in two] == [d["id"] for d in docs]
    assert one == two
    assert two[-1].error and "Empty text" in two[-1].error


def _xned(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xned.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        **kw,
    )


def _written(partial: Path) -> int:
    """Records in the partial output so far, committed or not (checkpoints come every 2 s,
    so a fast run could finish between two of them)."""
    try:
        return partial.read_bytes().count(b"\n")
    except OSError:
        return 0


def test_resume_after_sigkill_gives_every_document_exactly_once(tmp_path, bundle_path):
    src = tmp_path / "in.jsonl"
    n_docs = 4000
    with open(src, "w", encoding="utf-8") as f:
        for d in _docs(n_docs):
            f.write(json.dumps(d) + "\n")
        f.write("not json\n")
    base = ["link", "-i", str(src), "-f", "jsonl", "-b", str(bundle_path), "-q"]
    ref = tmp_path / "ref.jsonl"
    p = _xned(*base, "-o", str(ref))
    p.communicate(timeout=600)
    assert p.returncode == 1  # the malformed line is an error record, the rest went through
    out = tmp_path / "out.jsonl"
    partial, meta = tmp_path / "out.jsonl.partial", tmp_path / "out.jsonl.partial.json"
    kills = 0
    for target in (1, n_docs // 3, 2 * n_docs // 3):  # kill -9 once past each checkpoint
        p = _xned(*base, "-o", str(out), *(["--resume"] if kills else []))
        if not kill_when(p, lambda t=target: _written(partial) >= t, poll=0.05):
            break
        kills += 1
        assert partial.exists() and not out.exists()
    assert kills >= 2
    p = _xned(*base, "-o", str(out))  # without --resume: refuses to clobber the interrupted run
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and b"--resume" in err
    p = _xned(*base, "-o", str(out), "--resume")
    p.communicate(timeout=600)
    assert p.returncode == 1
    assert out.read_bytes() == ref.read_bytes()
    assert not partial.exists() and not meta.exists()
    assert len(out.read_text(encoding="utf-8").split("\n")) == n_docs + 2  # + the error record + final newline


def test_resume_refuses_other_options(tmp_path, bundle_path, capsys):
    from xned.cli.main import main

    src = tmp_path / "in.txt"
    src.write_text("Tokyo\n" * 3, encoding="utf-8")
    out = tmp_path / "out.tsv"
    (tmp_path / "out.tsv.partial").write_text("", encoding="utf-8")
    meta = {"records": 0, "bytes": 0, "signature": {"format": "jsonl"}}
    (tmp_path / "out.tsv.partial.json").write_text(json.dumps(meta), encoding="utf-8")
    assert main(["link", "-i", str(src), "-o", str(out), "-f", "tsv", "-b", str(bundle_path), "--resume"]) == 1
    assert "other options" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["input", "directory", "symlink", "fifo", "device"])
def test_output_path_that_would_destroy_something_is_refused(tmp_path, bundle_path, capsys, kind):
    from xned.cli.main import main

    src = tmp_path / "in.txt"
    src.write_text("Tokyo\n", encoding="utf-8")
    target = tmp_path / "out"
    if kind == "input":
        target = src
    elif kind == "directory":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("keep me", encoding="utf-8")
        target.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target = Path("/dev/null")
    before = src.read_text(encoding="utf-8")
    code = main(["link", "-i", str(src), "-o", str(target), "-f", "jsonl", "-b", str(bundle_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(target) in err
    assert src.read_text(encoding="utf-8") == before
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "elsewhere").read_text(encoding="utf-8") == "keep me"
        assert main(["link", "-i", str(src), "-o", str(target), "-f", "jsonl", "-b", str(bundle_path), "--force"]) == 0
        assert not target.is_symlink() and json.loads(target.read_text(encoding="utf-8"))["mentions"]


@pytest.mark.parametrize("force", [False, True])
def test_symlink_planted_at_the_partial_output_is_never_followed(tmp_path, bundle_path, capsys, force):
    from xned.cli.main import main

    src = tmp_path / "in.txt"
    src.write_text("Tokyo\n", encoding="utf-8")
    outside = tmp_path / "elsewhere" / "victim.txt"
    outside.parent.mkdir()
    outside.write_text("keep me", encoding="utf-8")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "o.jsonl.partial").symlink_to(outside)
    argv = ["link", "-i", str(src), "-o", str(out_dir / "o.jsonl"), "-f", "jsonl", "-b", str(bundle_path)]
    assert main(argv + (["--force"] if force else [])) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "symlink" in err
    assert outside.read_text(encoding="utf-8") == "keep me"
    assert not (out_dir / "o.jsonl").exists()


@pytest.mark.parametrize("side", [".partial", ".partial.json"])
def test_input_that_is_the_outputs_sidecar_is_refused(tmp_path, bundle_path, capsys, side):
    from xned.cli.main import main

    out = tmp_path / "o.jsonl"
    src = tmp_path / f"o.jsonl{side}"
    src.write_text('{"id": "a", "text": "Tokyo"}\n', encoding="utf-8")
    argv = ["link", "-i", str(src), "-o", str(out), "-f", "jsonl", "-b", str(bundle_path), "--force"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "rename the input" in err
    assert src.read_text(encoding="utf-8") == '{"id": "a", "text": "Tokyo"}\n'


def test_byte_order_marks_and_utf16():
    utf8 = "\ufeff" + json.dumps({"id": "a", "text": "Tokyo", "lang": "en"}) + "\n"
    (rec,) = read_documents(io.BytesIO(utf8.encode("utf-8")), "auto", "x")
    assert rec["id"] == "a" and rec["text"] == "Tokyo"
    for enc in ("utf-16", "utf-32"):
        data = "Tokio y Berlín\nMadrid\n".encode(enc)  # with its byte-order mark
        recs = list(read_documents(io.BytesIO(data), "auto", "x"))
        assert [r["text"] for r in recs] == ["Tokio y Berlín", "Madrid"]


def test_error_records_keep_the_users_id_and_line():
    data = b'{"id": "u-1", "text": 5}\n\n{"id": "u-2", "text": "ok"}\n\xff\xfe bad\n'
    recs = list(read_documents(io.BytesIO(data), "jsonl", "in.jsonl"))
    assert recs[0].id == "u-1" and recs[0].line == 1 and "text" in recs[0].error
    assert recs[1]["id"] == "u-2" and recs[1]["line"] == 3
    assert recs[2].id == "in.jsonl:4" and "UTF-8" in recs[2].error


def test_process_substitution_input(bundle_path):
    cmd = f'"{sys.executable}" -m xned.cli.main link -i <(printf "Tokyo\\n") -f jsonl -b "{bundle_path}"'
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["mentions"][0]["qid"] == "Q1490"


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat_line.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_with_their_parent(tmp_path, bundle_path, sig):
    src = tmp_path / "in.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in _docs(200_000):
            f.write(json.dumps(d) + "\n")
    out = tmp_path / "out.jsonl"
    p = _xned("link", "-i", str(src), "-f", "jsonl", "-b", str(bundle_path), "-q", "--workers", "2", "-o", str(out))
    partial = tmp_path / "out.jsonl.partial"
    deadline = time.monotonic() + 120
    while p.poll() is None and _written(partial) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read() if p.stderr else ""
    workers = _children(p.pid)
    assert len(workers) >= 2
    p.send_signal(sig)
    p.wait(timeout=60)
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "worker processes outlived their parent"
    if sig == signal.SIGTERM:  # as Ctrl-C: the partial output is kept for --resume
        assert p.returncode == 143
        assert partial.exists() and (tmp_path / "out.jsonl.partial.json").exists()
        assert b"--resume" in p.stderr.read()


def test_one_writer_per_output_and_no_lock_file_left(tmp_path):
    from xned.cli.output import CheckpointedOutput
    from xned.errors import InputError

    out = tmp_path / "o.jsonl"
    first = CheckpointedOutput(out, {"format": "jsonl"})
    first.open(resume=False, force=False)
    with pytest.raises(InputError, match="Another xned link is writing"):
        CheckpointedOutput(out, {"format": "jsonl"}).open(resume=False, force=False)
    first.write("{}\n", 1)
    first.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


def test_the_cli_imports_where_fcntl_does_not_exist():
    """Windows has no fcntl: the CLI, its output writer and the bundle writers must not need it."""
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import xned.cli.main, xned.cli.output, xned.export.transaction, xned.engine.state\n"
        "print('ok')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == b"ok", p.stderr
