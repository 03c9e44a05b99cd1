"""Bounded local load test of ``xned serve``: single-sentence POST /link requests.

    python benchmarks/serve_load.py [--bundle B] [--workers 1,2] [--requests 400] [--clients 4]

For each worker count: starts ``xned serve`` on a free loopback port, waits for /health,
warms up, then sends a fixed number of requests from a fixed number of concurrent clients
(bounded also by --max-seconds) and prints requests/s and p50/p95 latency as JSON lines.
Loopback only; the server is stopped after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

SENTENCES = [
    ("es", "Hablo con Telefónica desde México."),
    ("de", "Er zog von Österreich in die Schweiz."),
    ("en", "Toyota and Starbucks opened offices in Kenya."),
    ("ja", "彼は英語を話し、スターバックスで働いている。"),
    ("fr", "La France et l'Allemagne ont signé un accord."),
    ("eu", "Euskara Frantzia eta Alemania artean."),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(bundle: str | None, workers: int, requests: int, clients: int, max_seconds: float) -> dict:
    port = _port()
    cmd = [sys.executable, "-m", "xned.cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    cmd += ["--threads", "1", "--concurrency", str(clients)]
    if bundle:
        cmd += ["--bundle", bundle]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"server did not start: {cmd}")
                time.sleep(0.1)
            for i in range(20 * workers):  # warm every worker's session
                lang, text = SENTENCES[i % len(SENTENCES)]
                c.post(url + "/link", json={"text": text, "lang": lang})

        def one(i: int) -> tuple[float, int]:
            lang, text = SENTENCES[i % len(SENTENCES)]
            t = time.perf_counter()
            r = client.post(url + "/link", json={"text": text, "lang": lang})
            return time.perf_counter() - t, r.status_code

        stop = time.monotonic() + max_seconds
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                out = list(pool.map(lambda i: one(i) if time.monotonic() < stop else (0.0, -1), range(requests)))
            wall = time.perf_counter() - t0
        done = [(dt, st) for dt, st in out if st != -1]
        lat = sorted(dt * 1000 for dt, st in done if st == 200)
        return {
            "workers": workers,
            "clients": clients,
            "requests": len(done),
            "ok": len(lat),
            "req_per_s": round(len(done) / wall, 1),
            "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1),
            "loadavg": os.getloadavg()[0],
        }
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args()
    for w in (int(x) for x in args.workers.split(",")):
        print(json.dumps(run(args.bundle, w, args.requests, args.clients, args.max_seconds)), flush=True)


if __name__ == "__main__":
    main()
