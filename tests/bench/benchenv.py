"""What the whole-chain benchmarks share: a loopback registry holding the busybox fixture,
the VCH (release build) and Debian's dockerd 20.10 as the reference, all under one base dir."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
import conftest as sysenv  # noqa: E402  (the whole-system harness)

DOCKER = sysenv.DOCKER


def start_registry(base, procs):
    """Starts docker-registry with busybox pushed; returns `HOST:PORT/busybox:latest`."""
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
    return f"127.0.0.1:{port}/busybox:latest"


def start_vch(base, image, procs):
    """`vch serve` (release build unless VCH_BIN says otherwise) with busybox pulled."""
    os.environ.setdefault("VCH_BIN", str(sysenv.REPO / "target" / "release" / "vch"))
    vch = sysenv.Vch(base, image.split("/")[0]).start()
    procs.append(vch.proc)
    vch.docker("pull", "-q", image)
    vch.docker("tag", image, "busybox:latest")
    return vch


def start_dockerd(base, image, procs):
    """dockerd 20.10 with its own socket and data root, no bridge, busybox pulled; returns
    its socket path, or None when dockerd is not installed."""
    dockerd = shutil.which("dockerd")
    if not dockerd:
        return None
    dsock = base / "dockerd.sock"
    dlog = open(base / "dockerd.log", "wb")
    procs.append(subprocess.Popen(
        [dockerd, "--host", f"unix://{dsock}", "--data-root", str(base / "docker"),
         "--exec-root", str(base / "docker-exec"), "--pidfile", str(base / "dockerd.pid"),
         "--bridge=none", "--iptables=false", "--ip-masq=false"],
        stdout=dlog, stderr=dlog))
    for _ in range(300):
        if dsock.exists():
            break
        time.sleep(0.1)
    env_d = [DOCKER, "-H", f"unix://{dsock}"]
    subprocess.run([*env_d, "pull", "-q", image], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*env_d, "tag", image, "busybox:latest"], check=True)
    return dsock


def stop_all(procs, base):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(base, ignore_errors=True)
