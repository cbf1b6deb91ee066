"""Whole-system harness: a loopback registry (Debian's docker-registry) holding a busybox
image built from Debian's busybox-static, and `vch serve` on its embedded simulator,
driven with the real docker CLI and inspected from the vSphere side with pyvmomi."""

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else shutil.which("docker")


def cannot_run(reason):
    """A test that cannot run here: skipped on a developer's machine, a failure in CI
    (CI=true), where a skip would let a green run hide that nothing was tested."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run under CI=true: {reason}")
    pytest.skip(reason)


def vch_binary():
    env = os.environ.get("VCH_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "vch"
        if p.exists():
            return str(p)
    cannot_run("vch is not built (cargo build -p vch -p tether)")


def sim_binary():
    """The standalone simulator: VCSIM_BIN, or beside the vch binary."""
    env = os.environ.get("VCSIM_BIN")
    if env:
        return env
    p = Path(vch_binary()).parent / "vcenter-sim"
    if p.exists():
        return str(p)
    cannot_run("vcenter-sim is not built (cargo build -p vcenter-sim)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=30.0, interval=0.1):
    """Polls `pred` until it holds or `timeout` seconds pass; whether it held."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)  # allow-sleep: poll interval of a deadline loop
    return False


def wait_for_port(port, deadline_s=10):
    """Waits until something listens on 127.0.0.1:port (bounded)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)  # allow-sleep: poll interval of a bounded loop
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def vm_named(si, prefix):
    """The one VM (through pyvmomi session `si`) whose name starts with `prefix`."""
    from pyVmomi import vim

    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        [vm] = [vm for vm in view.view if vm.name.startswith(prefix)]
        return vm
    finally:
        view.Destroy()


def busybox_oci(root: Path, out: Path, config=None):
    """An OCI layout with one layer: busybox and its applets, /etc/passwd and /etc/group.
    `config` adds to the image's container config (e.g. a Healthcheck)."""
    (root / "bin").mkdir(parents=True)
    for d in ("etc", "tmp"):
        (root / d).mkdir()
    bb = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(bb, root / "bin" / "busybox")
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", root / "bin" / a)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(b):
        h = hashlib.sha256(b).hexdigest()
        (blobs / h).write_bytes(b)
        return "sha256:" + h

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(root)):
            t.add(root / name, arcname=name)
    raw = raw.getvalue()
    gz = gzip.compress(raw, mtime=0)
    layer = blob(gz)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], **(config or {})},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": len(gz)}]}).encode()
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(man), "size": len(man),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


class Vch:
    def __init__(self, base: Path, registry: str, extra_args=(), prefix=()):
        self.base = base
        self.registry = registry
        self.extra_args = list(extra_args)
        # A command the daemon runs under (e.g. `ip netns exec NS`).
        self.prefix = list(prefix)
        self.sock = base / "vch.sock"
        self.state = base / "state"
        self.proc = None

    def start(self):
        log = open(self.base / "vch.log", "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, vch_binary(), "serve", "-H", f"unix://{self.sock}", "--state-dir", str(self.state),
             "--insecure-registry", self.registry, *self.extra_args], stdout=log, stderr=log)
        for _ in range(600):
            if self.sock.exists():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)  # allow-sleep: poll interval of a bounded loop
        raise RuntimeError("vch did not start: " + (self.base / "vch.log").read_text()[-3000:])

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=60)
        if kill and self.sock.exists():
            self.sock.unlink()

    def docker(self, *args, check=True, timeout=120, input_file=None, env=None, cwd=None):
        stdin = open(input_file, "rb") if input_file else subprocess.DEVNULL
        try:
            r = subprocess.run([DOCKER, "-H", f"unix://{self.sock}", *args], stdin=stdin,
                               capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, **(env or {})}, cwd=cwd)
        finally:
            if input_file:
                stdin.close()
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def vsphere(self):
        """pyvmomi connected to the embedded vCenter, certificate pinned."""
        from pyVim.connect import SmartConnect
        info = json.loads((self.state / "vcenter-sim" / "sim-info.json").read_text())
        host, port = info["url"].split("//")[1].split("/")[0].split(":")
        return SmartConnect(host=host, port=int(port), user=info["username"], pwd=info["password"],
                            disableSslCertValidation=True)


@pytest.fixture(scope="module")
def vch():
    if os.geteuid() != 0:
        cannot_run("container VMs need root (namespaces, loop devices)")
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            cannot_run(f"{tool} is not installed")
    if not DOCKER:
        cannot_run("the docker CLI is not installed")
    base = Path(tempfile.mkdtemp(prefix="vch-system-"))
    port = free_port()
    (base / "registry.yml").write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {base}/registry}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: error}}\n")
    reg = subprocess.Popen(["docker-registry", "serve", str(base / "registry.yml")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        busybox_oci(base / "rootfs", base / "oci")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{base}/oci:latest",
                        f"docker://127.0.0.1:{port}/busybox:latest"], check=True)
        v = Vch(base, f"127.0.0.1:{port}").start()
        v.docker("pull", "-q", f"127.0.0.1:{port}/busybox:latest")
        v.docker("tag", f"127.0.0.1:{port}/busybox:latest", "busybox:latest")
        yield v
        v.stop()
    finally:
        reg.terminate()
        reg.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
