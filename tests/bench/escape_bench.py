"""The escape battery (tests/system/escape_battery.sh) as container root, against the VCH
and against dockerd 20.10 with its default confinement, in the same run. Prints one JSON
object: for each attempt, whether it was blocked under each.

    cargo build --release -p vch -p tether && python3 tests/bench/escape_bench.py
"""

import json
import subprocess
import tempfile
from pathlib import Path

import benchenv

BATTERY = Path(__file__).resolve().parents[1] / "system" / "escape_battery.sh"


def battery(sock):
    with open(BATTERY, "rb") as f:
        r = subprocess.run([benchenv.DOCKER, "-H", f"unix://{sock}", "run", "--rm", "-i", "busybox", "sh"],
                           stdin=f, capture_output=True, text=True, timeout=300)
    return {l.split(" ")[0]: l.split(" ")[1] == "blocked" for l in r.stdout.splitlines() if " " in l}


def main():
    base = Path(tempfile.mkdtemp(prefix="vch-escape-"))
    procs = []
    try:
        image = benchenv.start_registry(base, procs)
        vch = benchenv.start_vch(base, image, procs)
        dsock = benchenv.start_dockerd(base, image, procs)
        v = battery(vch.sock)
        d = battery(dsock) if dsock else {}
        print(json.dumps({
            "bench": "escape_battery", "attempts": len(v),
            "vch_blocked": sum(v.values()), "dockerd_blocked": sum(d.values()) if d else None,
            "escaped_vch": sorted(k for k, ok in v.items() if not ok),
            "escaped_dockerd": sorted(k for k, ok in d.items() if not ok) if d else None,
        }))
    finally:
        benchenv.stop_all(procs, base)


if __name__ == "__main__":
    main()
