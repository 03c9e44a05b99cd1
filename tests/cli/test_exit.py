"""The console script's fast exit: what a normal exit does, minus the interpreter teardown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import atexit, sys, threading, time
from pathlib import Path
from xned.cli.main import exit_fast

out = Path(sys.argv[1])
if sys.argv[2] == "traced":
    sys.settrace(lambda *a: None)

class Teardown:
    def __init__(self, f):
        self.f = f  # opened now: module globals may be gone when __del__ runs

    def __del__(self):
        self.f.write("freed")
        self.f.close()

keep = Teardown(open(out / "teardown", "w"))  # freed only when the interpreter tears down
atexit.register(lambda: (out / "atexit").write_text("ran"))

def late():
    time.sleep(0.3)
    (out / "thread").write_text("done")

threading.Thread(target=late).start()
sys.stdout.write("x" * 200_000)  # buffered: the exit must flush it
exit_fast(3)
"""


def _child(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), mode], capture_output=True, timeout=60)


def test_fast_exit_runs_exit_handlers_and_flushes_but_skips_teardown(tmp_path: Path) -> None:
    p = _child(tmp_path, "plain")
    assert p.returncode == 3, p.stderr
    assert p.stdout == b"x" * 200_000
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"  # non-daemon threads are waited for
    assert (tmp_path / "teardown").read_text() == ""


def test_under_a_tracer_the_normal_exit_is_kept(tmp_path: Path) -> None:
    p = _child(tmp_path, "traced")
    assert p.returncode == 3, p.stderr
    assert p.stdout == b"x" * 200_000
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "teardown").read_text() == "freed"


def test_console_script_links_and_reports_errors(tmp_path: Path) -> None:
    """``entry`` as the installed ``xned`` runs it: a link written to -o, an error as exit 1."""
    script = "import sys; from xned.cli.main import entry; sys.argv[0] = 'xned'; entry()"
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "d1", "text": "Viajó de Francia a Japón."}) + "\n", encoding="utf-8")
    dest = tmp_path / "out.jsonl"
    ok = subprocess.run(
        [sys.executable, "-c", script, "link", "-i", str(src), "-o", str(dest), "-f", "jsonl", "--lang", "es"],
        capture_output=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    rows = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["d1"]
    assert {m["text"] for m in rows[0]["mentions"]} >= {"Francia", "Japón"}
    bad = subprocess.run(
        [sys.executable, "-c", script, "link", "-i", str(tmp_path / "missing.jsonl")], capture_output=True, timeout=60
    )
    assert bad.returncode == 1
    assert b"Error:" in bad.stderr and b"missing.jsonl" in bad.stderr
    assert b"Traceback" not in bad.stderr
