#!/usr/bin/env python3
"""Benchmark: create + start of many containers through the Docker API at a fixed
concurrency, then `docker ps -a`, and the memory each container costs, against Debian's
dockerd 20.10 (docker.io) measured in the same run.

    cargo build --release -p vch -p tether && python3 tests/bench/scale_bench.py [--count 1000] [--concurrency 32] [--no-reference]

Memory per container = growth of the VCH process's PSS (it embeds the simulator) plus the
PSS of every process of the container VMs (the sandbox cgroups), divided by the count:
once with all containers created (parked instant clones) and once with all running.
Needs root, docker-registry, skopeo, the docker CLI and docker-py. Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

import benchenv

DOCKER = benchenv.DOCKER


def pss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_pids():
    """Pids of every process in the simulator's VM cgroups (v1 memory or v2)."""
    pids = set()
    for root in ("/sys/fs/cgroup/memory/vcenter-sim", "/sys/fs/cgroup/vcenter-sim"):
        if not os.path.isdir(root):
            continue
        for d in os.listdir(root):
            try:
                pids.update(int(p) for p in open(f"{root}/{d}/cgroup.procs").read().split())
            except OSError:
                pass
    return pids


def memory_mib(daemon_pid, baseline_kib, n):
    vms = sum(pss_kib(p) for p in vm_pids())
    daemon = pss_kib(daemon_pid) - baseline_kib
    return {"per_container_mib": round((daemon + vms) / 1024 / n, 3),
            "daemon_growth_mib": round(daemon / 1024, 1), "vm_processes_mib": round(vms / 1024, 1)}


def in_parallel(fn, items, concurrency):
    local = threading.local()
    errors = []

    def run(item):
        try:
            fn(local, item)
        except Exception as e:  # noqa: BLE001 (counted and reported)
            errors.append(str(e)[:400])

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, items))
    return time.perf_counter() - t, errors


def api(local, sock):
    if not hasattr(local, "c"):
        local.c = docker.APIClient(base_url=f"unix://{sock}", version="1.41", timeout=300)
    return local.c


def scale(sock, count, concurrency, prefix, daemon_pid=None):
    out = {}
    baseline = pss_kib(daemon_pid) if daemon_pid else 0
    ids = {}

    def create(local, i):
        c = api(local, sock).create_container(
            "busybox", ["sleep", "3600"], name=f"{prefix}{i}",
            host_config=api(local, sock).create_host_config(network_mode="none"))
        ids[i] = c["Id"]

    def start(local, i):
        api(local, sock).start(ids[i])

    def remove(local, i):
        api(local, sock).remove_container(ids[i], force=True)

    t_create, e1 = in_parallel(create, range(count), concurrency)
    if daemon_pid:
        out["memory_parked"] = memory_mib(daemon_pid, baseline, count)
    t_start, e2 = in_parallel(start, list(ids), concurrency)
    if daemon_pid:
        out["memory_running"] = memory_mib(daemon_pid, baseline, count)
    # Let the started containers finish booting (dockerd's start returns once they run;
    # the VCH's once the VM was told), so ps measures listing, not a busy machine.
    time.sleep(5)
    ps = []
    for _ in range(3):
        t = time.perf_counter()
        r = subprocess.run([DOCKER, "-H", f"unix://{sock}", "ps", "-a", "-q"], check=True,
                           capture_output=True, text=True)
        ps.append((time.perf_counter() - t) * 1000)
    listed = len(r.stdout.split())
    t_rm, e3 = in_parallel(remove, list(ids), concurrency)
    out.update({
        "containers": count, "concurrency": concurrency,
        "create_s": round(t_create, 2), "start_s": round(t_start, 2),
        "create_plus_start_s": round(t_create + t_start, 2),
        "per_second": round(count / (t_create + t_start), 1),
        "ps_a_ms": round(statistics.median(ps), 1), "ps_a_listed": listed,
        "rm_f_s": round(t_rm, 2), "errors": len(e1) + len(e2) + len(e3),
        "first_errors": (e1 + e2 + e3)[:3],
    })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    out = {"bench": "scale", "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base = Path(tempfile.mkdtemp(prefix="vch-scale-bench-"))
    procs = []
    try:
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        vch.docker("run", "--rm", "--network", "none", "busybox", "true")  # warm-up
        out["vch"] = scale(vch.sock, args.count, args.concurrency, "s", vch.proc.pid)
        dsock = None if args.no_reference else benchenv.start_dockerd(base, image, procs)
        if dsock:
            out["dockerd_20_10"] = scale(dsock, args.count, args.concurrency, "s")
    finally:
        benchenv.stop_all(procs, base)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
