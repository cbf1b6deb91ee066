#!/usr/bin/env python3
"""Benchmark: `docker run --rm busybox true` and `docker exec <c> true` through the whole VCH
chain, against Debian's
dockerd 20.10 (docker.io) measured in the same run on the same image from the same
loopback registry.

    cargo build --release -p vch -p tether && python3 tests/bench/run_bench.py [--runs 30]

Needs root, docker-registry, skopeo, the docker CLI; dockerd (apt-get install docker.io)
for the reference. Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import benchenv

DOCKER = benchenv.DOCKER


def timed_runs(sock, n, args):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = subprocess.run([DOCKER, "-H", f"unix://{sock}", *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1),
            "p90_ms": round(times[int(round(0.9 * (len(times) - 1)))], 1),
            "min_ms": round(times[0], 1), "runs": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    out = {"bench": "docker_run", "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base = Path(tempfile.mkdtemp(prefix="vch-run-bench-"))
    procs = []
    try:
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        vch.docker("run", "--rm", "busybox", "true")  # warm-up
        out["vch"] = timed_runs(vch.sock, args.runs, ["run", "--rm", "busybox", "true"])
        vch.docker("run", "-d", "--name", "execbench", "busybox", "sleep", "600")
        vch.docker("exec", "execbench", "true")  # warm-up (waits for the control channel)
        out["vch_exec"] = timed_runs(vch.sock, args.runs, ["exec", "execbench", "true"])
        vch.docker("rm", "-f", "execbench")
        rss = int(next(l.split()[1] for l in open(f"/proc/{vch.proc.pid}/status") if l.startswith("VmRSS")))
        out["vch"]["daemon_rss_mib"] = round(rss / 1024, 1)

        dsock = benchenv.start_dockerd(base, image, procs)
        if dsock:
            env_d = [DOCKER, "-H", f"unix://{dsock}"]
            subprocess.run([*env_d, "run", "--rm", "--network", "none", "busybox", "true"], check=True)
            out["dockerd_20_10"] = timed_runs(dsock, args.runs, ["run", "--rm", "--network", "none", "busybox", "true"])
            subprocess.run([*env_d, "run", "-d", "--network", "none", "--name", "execbench", "busybox", "sleep", "600"],
                           check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*env_d, "exec", "execbench", "true"], check=True)
            out["dockerd_20_10_exec"] = timed_runs(dsock, args.runs, ["exec", "execbench", "true"])
            subprocess.run([*env_d, "rm", "-f", "execbench"], check=True, stdout=subprocess.DEVNULL)
        else:
            out["dockerd_20_10"] = "not installed (apt-get install docker.io)"
    finally:
        benchenv.stop_all(procs, base)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
