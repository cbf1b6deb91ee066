"""Soak: the VCH left running under a mixed load with long idle gaps, as people use it.

Concurrency 8 workers loop over run / exec / logs / rm with idle gaps of 30-120 s between
bursts (all workers idle together, so the daemon really sits idle), for SOAK_SECONDS
(default 1800). Counts errors and samples the daemon's RSS after every burst. Prints one
JSON object: operations, errors (with the first few messages), RSS after warm-up and at
the end, and whether long-lived containers survived every idle gap.

    cargo build --release -p vch -p tether && python3 tests/bench/soak_bench.py
    SOAK_SECONDS=300 SOAK_GAP=10,30 python3 tests/bench/soak_bench.py   # a short run
"""

import concurrent.futures
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import benchenv

SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "1800"))
GAP = tuple(int(x) for x in os.environ.get("SOAK_GAP", "30,120").split(","))
WORKERS = 8


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def burst(vch, worker, n):
    """One worker's burst: run, detached run + exec + logs, rm. Returns error messages."""
    errors = []

    def dk(*args, expect=None):
        r = vch.docker(*args, check=False, timeout=120)
        if r.returncode != 0 or (expect is not None and r.stdout != expect):
            errors.append(f"docker {' '.join(args[:3])}: rc={r.returncode} out={r.stdout[:80]!r} err={r.stderr[:200]!r}")
        return r

    name = f"soak-{worker}-{n}"
    dk("run", "--rm", "busybox", "echo", "hi", expect="hi\n")
    dk("run", "-d", "--name", name, "busybox", "sh", "-c", "echo started; sleep 600")
    dk("exec", name, "echo", "exec-ok", expect="exec-ok\n")
    dk("logs", name, expect="started\n")
    dk("rm", "-f", name)
    return errors


def main():
    base = Path(tempfile.mkdtemp(prefix="vch-soak-"))
    procs = []
    try:
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        pid = vch.proc.pid
        # Long-lived containers that must survive every idle gap.
        keep = [f"soak-keep-{i}" for i in range(3)]
        for k in keep:
            vch.docker("run", "-d", "--name", k, "busybox", "sleep", str(SOAK_SECONDS + 600))
        ops = errors_n = bursts = 0
        errors = []
        rss = []
        lost = []
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            while time.time() - t0 < SOAK_SECONDS:
                futs = [pool.submit(burst, vch, w, bursts) for w in range(WORKERS)]
                for f in futs:
                    errs = f.result()
                    errors_n += len(errs)
                    errors.extend(errs[: max(0, 5 - len(errors))])
                ops += WORKERS * 5
                bursts += 1
                rss.append(rss_kb(pid))
                for k in keep:
                    st = json.loads(vch.docker("inspect", k).stdout)[0]["State"]
                    if not st["Running"]:
                        lost.append((k, round(time.time() - t0)))
                gap = random.uniform(*GAP)
                if time.time() - t0 + gap >= SOAK_SECONDS:
                    break
                time.sleep(gap)  # the point of a soak: the daemon sits idle
        warm = rss[min(2, len(rss) - 1)]
        out = {
            "bench": "soak", "seconds": round(time.time() - t0), "workers": WORKERS,
            "idle_gap_s": list(GAP), "bursts": bursts, "operations": ops, "errors": errors_n,
            "first_errors": errors, "long_lived_lost": lost,
            "rss_kb_after_warmup": warm, "rss_kb_end": rss[-1], "rss_kb_max": max(rss),
            "rss_change_pct": round(100.0 * (rss[-1] - warm) / warm, 1) if warm else None,
        }
        print(json.dumps(out))
    finally:
        benchenv.stop_all(procs, base)


if __name__ == "__main__":
    main()
