#!/usr/bin/env python3
"""Benchmark: `docker build` (classic builder) of a small application image through the
whole VCH chain and through Debian's dockerd 20.10 in the same run: a cold build
(--no-cache: every RUN and COPY in a container), a fully cached rebuild, and a rebuild
after one source file changed. Median of --runs runs each.

    cargo build --release -p vch -p tether && python3 tests/bench/build_bench.py [--runs 3] [--mb 20]

Needs root, docker-registry, skopeo, the docker CLI; dockerd (apt-get install docker.io)
for the reference. Prints one JSON object (seconds per build, and VCH/dockerd ratios).
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

DOCKERFILE = """FROM busybox
ENV APP=/srv/app
WORKDIR /srv/app
COPY data/ ./data/
RUN mkdir -p out && for i in 1 2 3 4 5; do echo $i >> out/log; done
COPY src/ ./src/
RUN cat src/*.sh > out/all.sh && chmod +x out/all.sh
EXPOSE 8080
CMD ["./out/all.sh"]
"""


def make_context(base: Path, mb: int) -> Path:
    ctx = base / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "src").mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "data" / "blob").write_bytes(os.urandom(mb * 1000 * 1000))
    for i in range(20):
        (ctx / "src" / f"part{i}.sh").write_text(f"echo part {i}\n")
    return ctx


def build(sock, ctx, *args):
    t = time.perf_counter()
    r = subprocess.run([benchenv.DOCKER, "-H", f"unix://{sock}", "build", "-q", *args, str(ctx)],
                       capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if r.returncode != 0:
        raise RuntimeError(f"docker build failed: {r.stderr}")
    return time.perf_counter() - t


def measure(sock, ctx, runs, extra=()):
    cold, cached, changed = [], [], []
    for i in range(runs):
        cold.append(build(sock, ctx, "--no-cache", *extra, "-t", "bench-build"))
        cached.append(build(sock, ctx, *extra, "-t", "bench-build"))
        (ctx / "src" / "part0.sh").write_text(f"echo changed {i} {time.time()}\n")
        changed.append(build(sock, ctx, *extra, "-t", "bench-build"))
    med = lambda xs: round(statistics.median(xs), 2)
    return {"cold_s": med(cold), "cached_s": med(cached), "one_file_changed_s": med(changed)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=20)
    args = ap.parse_args()
    out = {"bench": "build", "runs": args.runs, "context_mb": args.mb, "nproc": os.cpu_count(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base = Path(tempfile.mkdtemp(prefix="vch-build-bench-"))
    procs = []
    try:
        ctx = make_context(base, args.mb)
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        out["vch"] = measure(vch.sock, ctx, args.runs)
        dsock = benchenv.start_dockerd(base, image, procs)
        if dsock:
            out["dockerd_20_10"] = measure(dsock, ctx, args.runs, ("--network", "none"))
            for k in ("cold_s", "cached_s", "one_file_changed_s"):
                out[f"{k}_ratio"] = round(out["vch"][k] / out["dockerd_20_10"][k], 2)
        else:
            out["dockerd_20_10"] = "not installed (apt-get install docker.io)"
    finally:
        benchenv.stop_all(procs, base)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
