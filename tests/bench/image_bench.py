#!/usr/bin/env python3
"""Benchmark: `docker commit` and `docker push` of a container that wrote a 100 MB file
(random bytes: gzip cannot shrink it), through the whole VCH chain and through Debian's
dockerd 20.10 in the same run, to the same loopback registry. Also `docker diff` of it.

    cargo build --release -p vch -p tether && python3 tests/bench/image_bench.py [--mb 100]

Needs root, docker-registry, skopeo, the docker CLI; dockerd (apt-get install docker.io)
for the reference. Prints one JSON object: seconds and MB/s per step and daemon.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import benchenv

DOCKER = benchenv.DOCKER


def docker(sock, *args):
    r = subprocess.run([DOCKER, "-H", f"unix://{sock}", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def timed(sock, mb, *args):
    t = time.perf_counter()
    docker(sock, *args)
    s = time.perf_counter() - t
    return {"s": round(s, 2), "mb_per_s": round(mb / s, 1)}


def measure(sock, registry, name, mb, extra_run_args=()):
    docker(sock, "run", "-d", *extra_run_args, "--name", "bigwriter", "busybox", "sh", "-c",
           f"head -c {mb * 1000 * 1000} /dev/urandom > /blob; touch /ready; sleep 3600")
    deadline = time.time() + 300
    while subprocess.run([DOCKER, "-H", f"unix://{sock}", "exec", "bigwriter", "test", "-f", "/ready"],
                         capture_output=True).returncode != 0:
        if time.time() > deadline:
            raise RuntimeError("the container never wrote its file")
        time.sleep(0.2)
    out = {}
    t = time.perf_counter()
    docker(sock, "diff", "bigwriter")
    out["diff_ms"] = round((time.perf_counter() - t) * 1000, 1)
    target = f"{registry}/bench/{name}:big"
    out["commit"] = timed(sock, mb, "commit", "bigwriter", target)
    out["push"] = timed(sock, mb, "push", target)
    docker(sock, "rm", "-f", "bigwriter")
    docker(sock, "rmi", target)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    out = {"bench": "commit_push", "mb": args.mb, "nproc": os.cpu_count(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base = Path(tempfile.mkdtemp(prefix="vch-image-bench-"))
    procs = []
    try:
        image = benchenv.start_registry(base, procs)
        registry = image.split("/")[0]
        vch = benchenv.start_vch(base, image, procs)
        # The container VM holds the file in its scratch disk: give it room.
        out["vch"] = measure(vch.sock, registry, "vch", args.mb, ("-m", "1g"))
        dsock = benchenv.start_dockerd(base, image, procs)
        if dsock:
            out["dockerd_20_10"] = measure(dsock, registry, "dockerd", args.mb, ("--network", "none"))
            for step in ("commit", "push"):
                out[f"{step}_speed_ratio"] = round(
                    out["vch"][step]["mb_per_s"] / out["dockerd_20_10"][step]["mb_per_s"], 2)
        else:
            out["dockerd_20_10"] = "not installed (apt-get install docker.io)"
    finally:
        benchenv.stop_all(procs, base)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
