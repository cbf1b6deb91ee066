#!/usr/bin/env python3
"""Benchmark: Docker networks on the VCH against dockerd 20.10 in the same run.

    cargo build --release -p vch -p tether && python3 tests/bench/network_bench.py [--runs 20]

- `docker network create` + `rm` p50 (the VCH makes and removes a vSphere port group);
- name resolution inside a container: a busybox loop of `nslookup <peer>` on a user
  network, per lookup (includes busybox's process start, the same for both engines);
- TCP throughput container → container on a user network (256 MiB from a busybox nc
  source to a busybox nc reader);
- TCP throughput published port → host (the same source, read by Python on the host) (`-p 127.0.0.1:P:5000`: the VCH's user-space
  proxy; dockerd's bridge + docker-proxy).

dockerd runs in a network namespace of its own (`unshare --net`), so its bridges and
docker-proxy never touch this machine's network; its host-side sender runs there too.
Needs root, docker-registry, skopeo, the docker CLI, dockerd (apt-get install docker.io).
Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import benchenv

DOCKER = benchenv.DOCKER
MIB = 256
# Throughput runs per engine (the 2-core machine is noisy; the median is reported).
REPS = 7


def p50(xs):
    return round(statistics.median(xs), 2)


def run(sock, *args, check=True):
    r = subprocess.run([DOCKER, "-H", f"unix://{sock}", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {r.stderr}")
    return r.stdout


def create_rm(sock, runs):
    times = []
    for i in range(runs):
        t = time.perf_counter()
        run(sock, "network", "create", f"bench{i}")
        run(sock, "network", "rm", f"bench{i}")
        times.append((time.perf_counter() - t) * 1000)
    return {"create_rm_p50_ms": p50(times), "runs": runs}


def timed_in_container(sock, net, script):
    """Runs `script` in a busybox on `net`; returns its own elapsed seconds, from
    /proc/uptime (busybox's date has no %N; 10 ms resolution, so the loops run long)."""
    out = run(sock, "run", "--rm", "--network", net, "busybox", "sh", "-c",
              f"s=$(cut -d' ' -f1 /proc/uptime); {script}; e=$(cut -d' ' -f1 /proc/uptime); echo elapsed $s $e")
    _, s, e = out.strip().splitlines()[-1].split()
    return float(e) - float(s)


def resolution(sock, net, lookups):
    run(sock, "run", "-d", "--name", "peer", "--network", net, "busybox", "sleep", "600")
    try:
        secs = timed_in_container(sock, net, f"for i in $(seq {lookups}); do nslookup peer >/dev/null || exit 1; done")
        return {"per_lookup_ms": round(secs * 1000 / lookups, 2), "lookups": lookups}
    finally:
        run(sock, "rm", "-f", "peer", check=False)


# A container that sends MIB MiB of zeros to whoever connects to port 5000 (busybox nc
# -e; busybox nc as the sender mangles long stdin, as a source it streams).
SOURCE = ["busybox", "nc", "-ll", "-p", "5000", "-e", "sh", "-c", f"head -c {MIB << 20} /dev/zero"]


def c2c(sock, net):
    run(sock, "run", "-d", "--name", "source", "--network", net, *SOURCE)
    try:
        ip = json.loads(run(sock, "inspect", "source"))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        rates = [MIB / timed_in_container(sock, net, f"n=$(nc {ip} 5000 | wc -c); [ $n = {MIB << 20} ] || exit 1")
                 for _ in range(REPS)]
        return {"MiB_per_s_p50": p50(rates), "min": round(min(rates), 1), "max": round(max(rates), 1),
                "MiB": MIB, "reps": REPS}
    finally:
        run(sock, "rm", "-f", "source", check=False)


RECEIVER = r"""
import socket, sys, time
port, want = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 20
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        t = time.perf_counter()
        got = 0
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
        if got == want:
            print(time.perf_counter() - t)
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("no full transfer from the published port")
    time.sleep(0.05)
"""


def published(sock, net, netns_pid=None):
    port = benchenv.sysenv.free_port()
    run(sock, "run", "-d", "--name", "psource", "--network", net, "-p", f"127.0.0.1:{port}:5000", *SOURCE)
    try:
        cmd = ["python3", "-c", RECEIVER, str(port), str(MIB << 20)]
        if netns_pid:
            cmd = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", *cmd]
        rates = [MIB / float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip())
                 for _ in range(REPS)]
        return {"MiB_per_s_p50": p50(rates), "min": round(min(rates), 1), "max": round(max(rates), 1),
                "MiB": MIB, "reps": REPS}
    finally:
        run(sock, "rm", "-f", "psource", check=False)


def engine(sock, runs, netns_pid=None):
    out = {"network": create_rm(sock, runs)}
    run(sock, "network", "create", "benchnet")
    try:
        out["resolution"] = resolution(sock, "benchnet", 300)
        out["container_to_container"] = c2c(sock, "benchnet")
        out["host_to_published_port"] = published(sock, "benchnet", netns_pid)
    finally:
        run(sock, "network", "rm", "benchnet", check=False)
    return out


def start_dockerd_in_netns(base, image_tar):
    """dockerd 20.10 in its own network namespace; busybox loaded from a tarball (the
    loopback registry is not reachable from there)."""
    dsock = base / "dockerd.sock"
    log = open(base / "dockerd.log", "wb")
    p = subprocess.Popen(
        ["unshare", "--net", "sh", "-c",
         f"ip link set lo up && exec dockerd --host unix://{dsock} --data-root {base}/docker "
         f"--exec-root {base}/docker-exec --pidfile {base}/dockerd.pid"],
        stdout=log, stderr=log)
    deadline = time.time() + 60
    while not dsock.exists():
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError("dockerd did not start: " + (base / "dockerd.log").read_text()[-2000:])
        time.sleep(0.1)  # poll interval of a bounded loop
    run(dsock, "load", "-q", "-i", str(image_tar))
    return p, dsock


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vch-netbench-"))
    procs = []
    result = {"bench": "network", "nproc": os.cpu_count(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        result["vch"] = engine(vch.sock, args.runs)
        if shutil.which("dockerd"):
            tar = base / "busybox.tar"
            subprocess.run(["skopeo", "copy", "--quiet", f"oci:{base}/oci:latest",
                            f"docker-archive:{tar}:busybox:latest"], check=True)
            p, dsock = start_dockerd_in_netns(base, tar)
            procs.append(p)
            result["dockerd_20_10"] = engine(dsock, args.runs, netns_pid=p.pid)
    finally:
        benchenv.stop_all(procs, base)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
