"""Progress lines of long passes (``xned.logs.Meter``): counts, rate, bytes read of the total
and an ETA, at most one line per interval; the shard watcher of ``kb build``."""

from __future__ import annotations

import time

from xned.export.kb.shards import DONE, ShardTask, _watched
from xned.logs import Meter
from xned.records import ReadProgress


def test_a_meter_line_says_rate_bytes_and_eta_once_per_interval():
    now = [100.0]
    lines: list[str] = []
    read = ReadProgress()
    meter = Meter(lines.append, "documents", total_bytes=4_000_000, progress=read, every=60, clock=lambda: now[0])
    now[0], read.bytes = 130.0, 1_000_000
    meter.tick(300)
    assert lines == []  # 30 s: not yet
    now[0] = 160.0
    meter.tick(600, "12 mentions")
    assert len(lines) == 1
    # 600 documents in 60 s; a quarter of the bytes in 60 s leaves three quarters: 180 s
    assert lines[0] == "600 documents (10.0/s), 1.0 MB of 4.0 MB read, ETA 3m00s, 12 mentions, 1m00s so far"
    now[0] = 170.0
    meter.tick(700)
    assert len(lines) == 1  # 10 s after the last line


def test_the_shard_watcher_counts_finished_shards_and_their_bytes(tmp_path):
    src = tmp_path / "dump.json"
    src.write_bytes(b"x" * 3000)
    tasks = [ShardTask(0, str(src), a, a + 1000, str(tmp_path / f"shard{k}")) for k, a in enumerate((0, 1000, 2000))]
    lines: list[str] = []
    with _watched(tasks, lines.append, every=0.0):
        for t in tasks[:2]:
            (tmp_path / t.work).mkdir()
            (tmp_path / t.work / DONE).write_text("{}", encoding="utf-8")
        time.sleep(1.6)
    assert lines and lines[-1].startswith("2 shards")
    assert "2.0 kB of 3.0 kB read" in lines[-1] and "of 3" in lines[-1]
