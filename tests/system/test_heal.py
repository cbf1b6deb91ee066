"""The VCH heals its own world and recovery tells the truth (issue 14): the template VM
powered off or destroyed out of band is healed without a VCH restart; a container VM
powered off out of band is `exited` 137 and its restart policy applies; after kill -9 of
the VCH (and with it the embedded vCenter and its VMs) containers show their real state;
a vCenter that goes away gives 503 and the VCH recovers when it returns."""

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

from conftest import Vch, free_port, sim_binary
from test_docker_run import inspect_state, vms_named, wait_for

HEAL_DEADLINE = 60


def template(si):
    [vm] = vms_named(si, "vch-template")
    return vm


def power_off(vm):
    WaitForTask(vm.PowerOffVM_Task())


def test_template_powered_off_out_of_band_is_healed(vch):
    si = vch.vsphere()
    power_off(template(si))
    # The run that arrives meanwhile waits for the heal instead of failing.
    t0 = time.time()
    r = vch.docker("run", "--rm", "busybox", "echo", "hi", timeout=HEAL_DEADLINE + 30)
    assert r.stdout == "hi\n"
    assert time.time() - t0 < HEAL_DEADLINE
    assert wait_for(lambda: template(si).runtime.powerState == "poweredOn", HEAL_DEADLINE)
    # And again, without a VCH restart.
    assert vch.docker("run", "--rm", "busybox", "echo", "again").stdout == "again\n"
    assert vch.proc.poll() is None


def test_template_destroyed_out_of_band_is_recreated(vch):
    si = vch.vsphere()
    old = template(si)._moId
    # The VCH may power it on again between our power-off and destroy: try until gone.
    deadline = time.time() + HEAL_DEADLINE
    while True:
        vm = next((v for v in vms_named(si, "vch-template") if v._moId == old), None)
        if vm is None:
            break
        assert time.time() < deadline, "could not destroy the template VM"
        try:
            if vm.runtime.powerState != "poweredOff":
                power_off(vm)
            WaitForTask(vm.Destroy_Task())
        except (vim.fault.InvalidPowerState, vim.fault.InvalidState,
                vmodl.fault.ManagedObjectNotFound):
            pass
    r = vch.docker("run", "--rm", "busybox", "echo", "hi", timeout=HEAL_DEADLINE + 30)
    assert r.stdout == "hi\n"
    assert wait_for(lambda: template(si)._moId != old
                    and template(si).runtime.powerState == "poweredOn", HEAL_DEADLINE)


def template_monitor(vch, si):
    """The template VM's monitor process (the VCH's child booted from the template's boot
    disk, outside the VMs' cgroups: clones are forks of it but live in their own)."""
    run_dir = f"/run/{template(si)._moId}/boot/"
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (p / "cmdline").read_bytes().decode(errors="replace")
            cgroups = (p / "cgroup").read_text()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == vch.proc.pid and run_dir in cmd and "vcenter-sim/" not in cgroups:
            return int(p.name)
    raise AssertionError("no template monitor found")


def test_a_template_that_stops_answering_is_power_cycled(vch):
    si = vch.vsphere()
    monitor = template_monitor(vch, si)
    # A hung VM: on, but its monitor answers nothing (no instant clone can be forked).
    os.kill(monitor, signal.SIGSTOP)
    try:
        r = vch.docker("run", "--rm", "busybox", "echo", "hi", timeout=HEAL_DEADLINE + 30)
        assert r.stdout == "hi\n", r.stderr
        assert template_monitor(vch, si) != monitor, "the template was power-cycled"
        assert vch.docker("run", "--rm", "busybox", "echo", "again").stdout == "again\n"
    finally:
        try:
            os.kill(monitor, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_container_vm_powered_off_out_of_band_is_exited_137(vch):
    vch.docker("run", "-d", "--name", "oob", "busybox", "sleep", "600")
    si = vch.vsphere()
    [vm] = vms_named(si, "oob-")
    power_off(vm)
    assert wait_for(lambda: inspect_state(vch, "oob")["State"]["Status"] == "exited", 30)
    st = inspect_state(vch, "oob")["State"]
    assert st["ExitCode"] == 137 and st["Running"] is False, st
    assert "Exited (137)" in vch.docker("ps", "-a", "--filter", "name=oob",
                                        "--format", "{{.Status}}").stdout
    vch.docker("rm", "oob")


def test_container_vm_powered_off_out_of_band_is_restarted_by_its_policy(vch):
    vch.docker("run", "-d", "--name", "oobr", "--restart", "always", "busybox", "sleep", "600")
    si = vch.vsphere()
    [vm] = vms_named(si, "oobr-")
    power_off(vm)

    def restarted():
        s = inspect_state(vch, "oobr")
        return s["RestartCount"] >= 1 and s["State"]["Status"] == "running"

    assert wait_for(restarted, 30), inspect_state(vch, "oobr")
    assert wait_for(lambda: vm.runtime.powerState == "poweredOn", 30)
    vch.docker("rm", "-f", "oobr")


def test_kill_9_recovery_shows_the_real_state(vch):
    vch.docker("run", "-d", "--name", "k9run", "busybox", "sleep", "600")
    vch.docker("run", "--name", "k9exit", "busybox", "sh", "-c", "exit 3", check=False)
    assert inspect_state(vch, "k9exit")["State"]["ExitCode"] == 3
    # First run exits 3; the second (a cold power-on) runs when the VCH dies. Its log
    # holds the first run's exit record, which is not the second run's.
    vch.docker("run", "--name", "k9again", "busybox", "sh", "-c",
               "if [ -f /ran ]; then sleep 600; fi; touch /ran; exit 3", check=False)
    assert inspect_state(vch, "k9again")["State"]["ExitCode"] == 3
    vch.docker("start", "k9again")
    assert wait_for(lambda: inspect_state(vch, "k9again")["State"]["Status"] == "running", 10), (
        inspect_state(vch, "k9again")["State"], vch.docker("logs", "k9again").stdout)
    vch.docker("create", "--name", "k9created", "busybox", "true")
    vch.stop(kill=True)
    vch.start()
    s = inspect_state(vch, "k9exit")["State"]
    assert (s["Status"], s["ExitCode"]) == ("exited", 3), s
    # Their VMs died with the embedded simulator: exited 137 (as a kill) - never created.
    for name in ("k9run", "k9again"):
        s = inspect_state(vch, name)["State"]
        assert s["Status"] == "running" or (s["Status"], s["ExitCode"]) == ("exited", 137), (name, s)
    assert inspect_state(vch, "k9created")["State"]["Status"] == "created"
    # The recovered state is persisted: a second restart tells the same.
    vch.stop(kill=True)
    vch.start()
    for name in ("k9run", "k9again"):
        s = inspect_state(vch, name)["State"]
        assert s["Status"] == "running" or (s["Status"], s["ExitCode"]) == ("exited", 137), (name, s)
    assert vch.docker("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
    vch.docker("start", "k9run")
    assert inspect_state(vch, "k9run")["State"]["Status"] == "running"
    vch.docker("rm", "-f", "k9run", "k9exit", "k9again", "k9created")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=180)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(180)
        self.sock.connect(str(self.unix_path))


def api(sock, method, path, body=None):
    c = UnixHTTP(sock)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class StandaloneSim:
    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.info = base / "sim-info.json"
        self.proc = None

    def start(self):
        if self.info.exists():
            self.info.unlink()
        log = open(self.base / "sim.log", "ab")
        self.proc = subprocess.Popen(
            [sim_binary(), "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.base / "data"),
             "--info-file", str(self.info)], stdout=log, stderr=log)
        assert wait_for(self.info.exists, 60), (self.base / "sim.log").read_text()[-3000:]
        return json.loads(self.info.read_text())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def test_vcenter_away_gives_503_and_the_vch_recovers(vch):
    base = Path(tempfile.mkdtemp(prefix="vch-away-"))
    sim = StandaloneSim(base)
    info = sim.start()
    (base / "pw").write_text(info["password"])
    v = Vch(base, vch.registry, ["--target", info["url"], "--user", info["username"],
                                 "--password-file", str(base / "pw"), "--thumbprint", info["sha256"],
                                 "--name", "away"])
    try:
        v.start()
        v.docker("pull", "-q", f"{vch.registry}/busybox:latest")
        v.docker("tag", f"{vch.registry}/busybox:latest", "busybox:latest")
        assert v.docker("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
        v.docker("run", "-d", "--name", "awayrun", "busybox", "sleep", "600")
        sim.kill()
        status, body = api(v.sock, "POST", "/v1.43/containers/create",
                           {"Image": "busybox", "Cmd": ["echo", "hi"]})
        assert status == 503, (status, body)
        msg = json.loads(body)["message"]
        assert msg.startswith(f"vCenter {info['url']} is unreachable"), msg
        # What the VCH knows without vCenter still answers.
        assert "awayrun" in v.docker("ps", "-a").stdout
        # vCenter returns (same data, every VM off as after a host crash): the VCH logs in
        # again, heals its template, and learns that the running container's VM died.
        sim.start()

        def runs():
            r = v.docker("run", "--rm", "busybox", "echo", "back", check=False, timeout=120)
            return r.returncode == 0 and r.stdout == "back\n"

        assert wait_for(runs, 90), (base / "vch.log").read_text()[-3000:]
        assert wait_for(lambda: inspect_state(v, "awayrun")["State"]["Status"] == "exited", 30)
        assert inspect_state(v, "awayrun")["State"]["ExitCode"] == 137
        v.docker("rm", "awayrun")
    finally:
        v.stop()
        if sim.proc and sim.proc.poll() is None:
            sim.proc.terminate()
            sim.proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(base)], check=False)
