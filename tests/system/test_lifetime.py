"""Time is an input: container VMs live as long as their users want, whatever the daemon
does meanwhile (idle threads retire, requests stop), exec never runs outside the container
however early it comes, and a killed VCH leaves nothing behind once it starts again."""

import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from test_docker_run import inspect_state as inspect
from test_docker_run import wait_for

import conftest as sysenv

# tokio retires idle blocking threads after 10 s; a VM whose life hung on one died then.
IDLE_SECONDS = 65


def vm_processes(owner):
    """The processes of the VMs run by the embedded simulator in process `owner`: its
    children (VM monitors, instant clones) and whatever is in its VMs' cgroups."""
    pids = set()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cgroups = (p / "cgroup").read_text()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == owner or f"/vcenter-sim/{owner}." in cgroups:
            pids.add(int(p.name))
    return pids


def alive(pids):
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def fetch(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def serves(url):
    try:
        return fetch(url) != ""
    except OSError:
        return False


def test_containers_outlive_an_idle_daemon(vch):
    names = [f"idle-{i}" for i in range(3)]
    for n in names:
        vch.docker("run", "-d", "--name", n, "busybox", "sleep", "3600")
    # The router too (DNS server, port proxy, slirp4netns) must outlive the idle time.
    port = sysenv.free_port()
    vch.docker("network", "create", "idlenet")
    vch.docker("run", "-d", "--name", "idle-web", "--network", "idlenet", "-p", f"127.0.0.1:{port}:80",
               "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
    names.append("idle-web")
    try:
        assert all(inspect(vch, n)["State"]["Running"] for n in names)
        url = f"http://127.0.0.1:{port}/hostname"
        assert wait_for(lambda: serves(url), timeout=20), "the published port never answered"
        # No request at all for longer than any idle timeout of the daemon's threads.
        # allow-sleep: idling past the daemon's idle timeouts is the behaviour under test.
        time.sleep(IDLE_SECONDS)
        for n in names:
            st = inspect(vch, n)["State"]
            assert st["Running"] and st["Status"] == "running", (n, st)
            # Really alive, not only said to be: its VM answers an exec.
            assert vch.docker("exec", n, "echo", "alive").stdout == "alive\n"
        assert vch.docker("run", "--rm", "busybox", "echo", "after idle").stdout == "after idle\n"
        hostname = vch.docker("exec", "idle-web", "hostname").stdout
        assert fetch(url) == hostname
        by_name = vch.docker("run", "--rm", "--network", "idlenet", "busybox", "wget", "-q", "-O", "-",
                             "http://idle-web/hostname").stdout
        assert by_name == hostname
    finally:
        vch.docker("rm", "-f", *names, check=False)
        vch.docker("network", "rm", "idlenet", check=False)


def test_exec_right_after_run_never_sees_the_host(vch, tmp_path):
    # A file only the host has: an exec that ran in the host's world would find it.
    marker = Path("/tmp") / f"vch-host-marker-{uuid.uuid4().hex}"
    marker.write_text("host\n")
    try:
        for i in range(20):
            name = f"race-{i}"
            vch.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
            r = vch.docker("exec", name, "sh", "-c", f"cat {marker} 2>/dev/null; hostname", check=False)
            assert "host" not in r.stdout.split("\n")[0], f"exec {i} ran outside the container: {r.stdout}"
            assert r.returncode == 0 and r.stdout.strip() == inspect(vch, name)["Config"]["Hostname"], r
            top = vch.docker("top", name).stdout
            assert "sleep 600" in top and "pytest" not in top, top
            vch.docker("rm", "-f", name)
    finally:
        marker.unlink()


def test_a_killed_vch_leaves_no_vm_behind_and_sweeps_at_start(vch):
    vch.docker("run", "-d", "--name", "doomed", "busybox", "sleep", "3600")
    vch.docker("run", "-d", "--name", "doomed-2", "busybox", "sleep", "3600")
    owner = vch.proc.pid
    vms = vm_processes(owner)
    # The template's monitor and guest, two containers' guests and their sleeps.
    assert len(vms) >= 5, vms
    vch.stop(kill=True)
    # The VMs die with the process that ran them (kill -9 gives it no chance to clean up).
    assert wait_for(lambda: not alive(vms), timeout=10), alive(vms)
    vch.start()
    # What the killed VCH's simulator left (its VMs' cgroups) is gone after the restart.
    leftovers = [p for h in ("memory", "pids", "cpu", "freezer", "")
                 for p in (Path("/sys/fs/cgroup") / h / "vcenter-sim").glob(f"{owner}.*")]
    assert leftovers == [], leftovers
    assert vch.docker("run", "--rm", "busybox", "echo", "back").stdout == "back\n"
    vch.docker("rm", "-f", "doomed", "doomed-2", check=False)
