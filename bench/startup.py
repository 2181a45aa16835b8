"""How long `regiond serve` takes to open its port and to serve, on a first start (the search
normaliser is fitted) and on a second start (it comes from the user cache), in one run.

    REGIOND_WEIGHTS=DIR .venv/bin/python bench/startup.py [--profile balanced] [--starts 2]

Each start is a new `regiond serve` process with a new data directory (so a new region index,
which needs the profile's normaliser) and the same, initially empty, cache directory
(XDG_CACHE_HOME). A client polls grpc.health.v1 from the moment the process is launched:
"port open" is the first answer (NOT_SERVING while starting), "SERVING" the first SERVING.
Baseline: the first start; the ratio is the second start's time to SERVING over the first's.
Before the port opened first, a client could reach nothing until SERVING.
With random weights in the official shapes (see docs/serving-startup.md), the timings are
those of real checkpoints: the computation does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def one_start(profile: str, weights: str | None, cache_home: Path, work: Path, name: str, timeout: float) -> dict:
    port = free_port()
    log_path = work / f"{name}.log"
    args = [sys.executable, "-m", "regiond", "serve", "--profile", profile, "--listen", f"127.0.0.1:{port}"]
    args += ["--data-dir", str(work / f"{name}-data")] + (["--weights", weights] if weights else [])
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    times: dict = {}
    with open(log_path, "w") as log, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        t0 = time.monotonic()
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        health = health_pb2_grpc.HealthStub(ch)
        try:
            while time.monotonic() - t0 < timeout:
                if proc.poll() is not None:
                    raise SystemExit(f"regiond serve exited ({proc.returncode}); see {log_path}")
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError:
                    time.sleep(0.05)
                    continue
                times.setdefault("port_open", time.monotonic() - t0)
                if status == health_pb2.HealthCheckResponse.SERVING:
                    times["serving"] = time.monotonic() - t0
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"not SERVING within {timeout:g} s; see {log_path}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    text = log_path.read_text()
    for key, pattern in (("warm_up", r"warmed up in ([\d.]+) s"), ("fit", r"fitted in ([\d.]+) s")):
        m = re.search(pattern, text)
        times[key] = float(m.group(1)) if m else None
    times["cached"] = "reusing the cached feature normaliser" in text
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="balanced")
    ap.add_argument("--weights", default=None, help="weights directory (default: $REGIOND_WEIGHTS)")
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds a start may take")
    args = ap.parse_args()
    print(f"load before: {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="regiond-startup-") as tmp:
        work = Path(tmp)
        runs = []
        for i in range(args.starts):
            name = "first start" if i == 0 else "second start" if i == 1 else f"start {i + 1}"
            t = one_start(args.profile, args.weights, work / "cache", work, f"start{i + 1}", args.timeout)
            runs.append(t)
            fit = f"normaliser fitted in {t['fit']:.1f} s" if t["fit"] is not None else "normaliser not fitted"
            source = " (from the cache)" if t["cached"] else ""
            warm = f"warm-up {t['warm_up']:.1f} s" if t["warm_up"] is not None else "no warm-up"
            print(
                f"{name}: port open after {t['port_open']:.1f} s, SERVING after {t['serving']:.1f} s "
                f"({fit}{source}; {warm}); load {loadavg()}"
            )
    if len(runs) >= 2:
        first, second = runs[0]["serving"], runs[1]["serving"]
        print(f"second start / first start, time to SERVING: {second / first:.2f} ({second:.1f} s / {first:.1f} s)")
    print(f"load after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
