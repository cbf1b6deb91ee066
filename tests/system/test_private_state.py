"""Private state and no leftovers (issue 14): after `vch serve` ran a container, nothing in
its state dir is readable or writable by group or others; the embedded vCenter's password
is random per state dir and stable across restarts; partial pulls a crash left in the
spool are swept at the next start."""

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from conftest import DOCKER, Vch


@pytest.fixture(scope="module", autouse=True)
def ci_must_run():
    """The `vch` fixture skips where it cannot run; in CI that is a failure."""
    if os.environ.get("CI") != "true":
        return
    missing = [t for t in ("docker-registry", "skopeo") if not shutil.which(t)]
    if os.geteuid() != 0 or missing or not DOCKER:
        pytest.fail(f"cannot run in CI: root={os.geteuid() == 0} missing={missing} docker={DOCKER}")


def loose_entries(root: Path):
    """Every file and directory under `root` (itself included) with any group/other
    permission bit, as (path, mode, kind). Symlinks are skipped (their mode means
    nothing); sockets are listed too: a socket's mode is its connect permission."""
    found = []
    root_dev = os.lstat(root).st_dev
    for dirpath, dirnames, filenames in os.walk(root):
        for p in [Path(dirpath), *(Path(dirpath) / f for f in filenames)]:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue  # removed while we walked (a VM's runtime files)
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & 0o077:
                found.append((str(p), oct(st.st_mode & 0o7777), stat.filemode(st.st_mode)[0]))
        # Do not descend into other filesystems mounted below (a VM's disks): their
        # contents are the guest's, behind the 0700 directories around them.
        dirnames[:] = [d for d in dirnames
                       if not os.path.islink(os.path.join(dirpath, d))
                       and os.lstat(os.path.join(dirpath, d)).st_dev == root_dev]
    return found


def sim_info(state: Path):
    return json.loads((state / "vcenter-sim" / "sim-info.json").read_text())


def test_state_dir_is_private_after_running_a_container(vch):
    vch.docker("run", "-d", "--name", "priv", "busybox", "sleep", "600")
    out = vch.docker("run", "--rm", "busybox", "echo", "logged").stdout
    assert out.strip() == "logged"
    vch.docker("logs", "priv")
    # The daemon's umask 077 stops at the VM: container processes get dockerd's 022.
    assert vch.docker("run", "--rm", "busybox", "sh", "-c", "umask").stdout.strip() == "0022"
    assert vch.docker("exec", "priv", "sh", "-c", "umask").stdout.strip() == "0022"
    mode = stat.S_IMODE(os.stat(vch.state).st_mode)
    assert mode == 0o700, oct(mode)
    loose = loose_entries(vch.state)
    assert loose == [], "group/other can reach:\n" + "\n".join(map(str, loose))
    for secret in ("vcenter-sim/sim-info.json", "vcenter-sim/sim-password", "vcenter-sim/sim.key"):
        m = stat.S_IMODE(os.stat(vch.state / secret).st_mode)
        assert m == 0o600, f"{secret}: {oct(m)}"
    vch.docker("rm", "-f", "priv")


def test_sim_password_is_random_per_state_dir_and_stable(vch):
    first = sim_info(vch.state)["password"]
    assert first != "vmware" and len(first) >= 32
    assert (vch.state / "vcenter-sim" / "sim-password").read_text().strip() == first
    # The default credentials do not open the embedded vCenter.
    from pyVim.connect import SmartConnect
    from pyVmomi import vim
    host, port = sim_info(vch.state)["url"].split("//")[1].split("/")[0].split(":")
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=host, port=int(port), user="administrator@vsphere.local", pwd="vmware",
                     disableSslCertValidation=True)
    # A second VCH with its own state dir gets its own password.
    base = Path(tempfile.mkdtemp(prefix="vch-priv2-"))
    other = Vch(base, vch.registry)
    try:
        other.start()
        second = sim_info(other.state)["password"]
        assert second not in (first, "vmware")
    finally:
        other.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_restart_keeps_password_and_sweeps_partial_pulls(vch):
    before = sim_info(vch.state)["password"]
    vch.stop(kill=True)  # a crash: nothing gets to clean up
    spool = vch.state / "spool"
    spool.mkdir(exist_ok=True)
    stale = spool / "5f1e3c0a-crash.part"
    stale.write_bytes(b"\0" * 65536)
    (spool / "load-crash").mkdir(exist_ok=True)
    (spool / "load-crash" / "member").write_bytes(b"half")
    vch.start()
    # Gone once the daemon serves (the store is opened before the socket is bound).
    assert vch.docker("version").returncode == 0
    assert not stale.exists() and not (spool / "load-crash").exists(), os.listdir(spool)
    assert sim_info(vch.state)["password"] == before
    # And a pull that fails leaves no partial file behind.
    r = vch.docker("pull", f"{vch.registry}/no-such-image:latest", check=False)
    assert r.returncode != 0
    assert [p for p in os.listdir(spool) if p.endswith(".part")] == []
    assert vch.docker("run", "--rm", "busybox", "true").returncode == 0
