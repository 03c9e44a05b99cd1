"""Killing a child process at a chosen point, for the tests of ``--resume``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def kill_when(p: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300.0, poll: float = 0.02) -> bool:
    """SIGKILL ``p`` as soon as ``ready()`` (checked every ``poll`` seconds, at most
    ``timeout``); False when ``p`` finished first."""
    deadline = time.monotonic() + timeout
    while p.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(poll)
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True
