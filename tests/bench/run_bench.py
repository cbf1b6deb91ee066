#!/usr/bin/env python3
"""Benchmark: `docker run --rm busybox true` and `docker exec <c> true` through the whole VCH
chain, against Debian's
dockerd 20.10 (docker.io) measured in the same run on the same image from the same
loopback registry.

    cargo build --release -p vch && python3 tests/bench/run_bench.py [--runs 30]

Needs root, docker-registry, skopeo, the docker CLI; dockerd (apt-get install docker.io)
for the reference. Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
import conftest as sysenv  # noqa: E402  (the whole-system harness)

DOCKER = sysenv.DOCKER


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
        port = sysenv.free_port()
        (base / "registry.yml").write_text(
            f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {base}/registry}}}}\n"
            f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: error}}\n")
        procs.append(subprocess.Popen(["docker-registry", "serve", str(base / "registry.yml")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        sysenv.busybox_oci(base / "rootfs", base / "oci")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{base}/oci:latest",
                        f"docker://127.0.0.1:{port}/busybox:latest"], check=True)
        image = f"127.0.0.1:{port}/busybox:latest"

        os.environ.setdefault("VCH_BIN", str(sysenv.REPO / "target" / "release" / "vch"))
        vch = sysenv.Vch(base, f"127.0.0.1:{port}").start()
        procs.append(vch.proc)
        vch.docker("pull", "-q", image)
        vch.docker("tag", image, "busybox:latest")
        vch.docker("run", "--rm", "busybox", "true")  # warm-up
        out["vch"] = timed_runs(vch.sock, args.runs, ["run", "--rm", "busybox", "true"])
        vch.docker("run", "-d", "--name", "execbench", "busybox", "sleep", "600")
        vch.docker("exec", "execbench", "true")  # warm-up (waits for the control channel)
        out["vch_exec"] = timed_runs(vch.sock, args.runs, ["exec", "execbench", "true"])
        vch.docker("rm", "-f", "execbench")
        rss = int(next(l.split()[1] for l in open(f"/proc/{vch.proc.pid}/status") if l.startswith("VmRSS")))
        out["vch"]["daemon_rss_mib"] = round(rss / 1024, 1)

        dockerd = shutil.which("dockerd")
        if dockerd:
            dsock = base / "dockerd.sock"
            dlog = open(base / "dockerd.log", "wb")
            p = subprocess.Popen([dockerd, "--host", f"unix://{dsock}", "--data-root", str(base / "docker"),
                                  "--exec-root", str(base / "docker-exec"), "--pidfile", str(base / "dockerd.pid"),
                                  "--bridge=none", "--iptables=false", "--ip-masq=false"],
                                 stdout=dlog, stderr=dlog)
            procs.append(p)
            for _ in range(300):
                if dsock.exists():
                    break
                time.sleep(0.1)
            env_d = [DOCKER, "-H", f"unix://{dsock}"]
            subprocess.run([*env_d, "pull", "-q", image], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*env_d, "tag", image, "busybox:latest"], check=True)
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
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
