"""The container lifecycle through the real docker CLI against `vch serve`, with each
container checked from the vSphere side too."""

import json
import time

import pytest
from pyVmomi import vim
from conftest import wait_for


def vms_named(si, prefix):
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return [vm for vm in view.view if vm.name.startswith(prefix)]
    finally:
        view.Destroy()


def test_run_prints_output_and_rm_destroys_the_vm(vch):
    r = vch.docker("run", "--rm", "--name", "rmme", "busybox", "echo", "hi")
    assert r.stdout == "hi\n"
    si = vch.vsphere()
    assert vms_named(si, "rmme-") == [], "--rm must destroy the container's VM"


def test_exit_code_propagates(vch):
    r = vch.docker("run", "--rm", "busybox", "sh", "-c", "echo out; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"


def test_command_not_found_is_127_with_docker_message(vch):
    r = vch.docker("run", "--rm", "busybox", "no-such-binary", check=False)
    assert r.returncode == 127
    assert "executable file not found" in r.stdout + r.stderr


def test_container_is_a_vm_in_the_vch_pool_with_expected_devices(vch):
    vch.docker("create", "--name", "devs", "busybox", "true")
    si = vch.vsphere()
    [vm] = vms_named(si, "devs-")
    assert vm.resourcePool.name == "vch"
    assert vm.parent.name == "vch"
    devices = vm.config.hardware.device
    disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    # boot disk, one busybox layer, scratch
    assert len(disks) == 3
    modes = sorted(d.backing.diskMode for d in disks)
    assert modes == ["independent_nonpersistent", "independent_nonpersistent", "persistent"]
    serial = [d for d in devices if isinstance(d, vim.vm.device.VirtualSerialPort)]
    # Port 1: the control channel to the VCH (network, client); port 2: the log file.
    assert serial[0].backing.serviceURI.startswith("tcp://127.0.0.1:")
    assert serial[0].backing.direction == "client"
    assert serial[1].backing.fileName.endswith("/container.log")
    extra = {o.key: o.value for o in vm.config.extraConfig}
    spec = json.loads(extra["guestinfo.vch.spec"])
    assert spec["cmd"] == ["true"]
    # scsi0:0 boot and scsi0:1 scratch come from the template (the scratch as the clone's
    # own delta disk); the layers follow.
    assert spec["layers"] == ["scsi0:2"]
    assert spec["scratch"] == "scsi0:1"
    scratch = [d for d in disks if d.backing.diskMode == "persistent"][0]
    assert scratch.backing.parent is not None, "the scratch disk is a delta of the template's"
    # Created = an instant clone of the running template, parked until `docker start`.
    [template] = vms_named(si, "vch-template")
    assert template.runtime.powerState == "poweredOn"
    assert vm.runtime.powerState == "poweredOn"
    assert extra.get("guestinfo.vch.state") == "created"
    assert spec["parked"] is True
    state = json.loads(vch.docker("inspect", "devs").stdout)[0]["State"]
    assert state["Status"] == "created" and not state["Running"]
    # rm of a created container powers the parked clone off and destroys it.
    vch.docker("rm", "devs")
    assert vms_named(si, "devs-") == []


def test_create_then_start_runs_the_parked_clone(vch):
    vch.docker("create", "--name", "parked", "busybox", "sh", "-c", "echo started; exit 4")
    # allow-sleep: "nothing runs while parked" is the claim: give a wrong start time to show.
    time.sleep(0.5)
    # Nothing ran while parked.
    assert vch.docker("logs", "parked").stdout == ""
    r = vch.docker("start", "-a", "parked", check=False)
    assert r.stdout == "started\n"
    assert r.returncode == 4
    # A second start is a cold power-on of the same VM.
    r = vch.docker("start", "-a", "parked", check=False)
    assert r.stdout == "started\n"
    assert r.returncode == 4
    assert vch.docker("logs", "parked").stdout == "started\nstarted\n"
    vch.docker("rm", "parked")


def test_ps_logs_inspect_and_rm(vch):
    vch.docker("run", "--name", "kept", "busybox", "sh", "-c", "echo one; echo two >&2")
    ps = vch.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert "kept Exited (0)" in ps
    logs = vch.docker("logs", "kept")
    assert logs.stdout == "one\n" and logs.stderr == "two\n"
    state = json.loads(vch.docker("inspect", "kept").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    r = vch.docker("rm", "kept")
    assert r.returncode == 0
    r = vch.docker("container", "inspect", "kept", check=False)
    assert r.returncode != 0 and "No such container" in r.stderr


def test_name_conflict_is_409_with_dockerd_wording(vch):
    vch.docker("create", "--name", "dup", "busybox", "true")
    r = vch.docker("create", "--name", "dup", "busybox", "true", check=False)
    assert r.returncode != 0
    assert 'The container name "/dup" is already in use' in r.stderr
    vch.docker("rm", "dup")


def test_unsupported_flags_are_refused_by_name(vch):
    r = vch.docker("run", "--rm", "-v", "/tmp:/x", "busybox", "true", check=False)
    assert r.returncode != 0 and "bind mounts" in r.stderr
    r = vch.docker("run", "--rm", "--privileged", "busybox", "true", check=False)
    assert r.returncode != 0 and "--privileged" in r.stderr


def test_unknown_image_is_no_such_image(vch):
    r = vch.docker("create", "nosuchimage:1", check=False)
    assert r.returncode != 0


def test_containers_survive_a_vch_kill_9(vch):
    vch.docker("run", "--name", "survivor", "busybox", "echo", "still here")
    vch.stop(kill=True)
    vch.start()
    ps = vch.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert "survivor Exited (0)" in ps
    assert vch.docker("logs", "survivor").stdout == "still here\n"
    vch.docker("rm", "survivor")


def test_kill_9_while_containers_run_and_are_created(vch):
    """kill -9 of the VCH (and with it the embedded vCenter and its VMs) while containers
    run and others are being created: after the restart every container that exists in
    vSphere is listed exactly once, and logs, start, attach and wait work for all."""
    import subprocess
    import threading

    vch.docker("run", "-d", "--name", "crash-runner", "busybox", "sh", "-c", "echo up; sleep 600")
    assert wait_for(lambda: vch.docker("logs", "crash-runner").stdout == "up\n")
    done = []

    def create(i):
        r = subprocess.run([sysdocker(), "-H", f"unix://{vch.sock}", "create", "--name", f"crash{i}",
                            "busybox", "echo", f"n{i}"], capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            done.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    # Kill once some creates are through and others are in flight.
    wait_for(lambda: len(done) >= 3, timeout=20)
    vch.stop(kill=True)
    for t in threads:
        t.join()
    vch.start()
    names = vch.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert len(names) == len(set(names)), f"duplicates after restart: {names}"
    crash = sorted(n for n in names if n.startswith("crash") and n != "crash-runner")
    print(f"creates acknowledged before the kill: {len(done)}, present after restart: {len(crash)}")
    # Every create the client saw succeed is there; others may or may not have landed.
    assert {f"crash{i}" for i in done} <= set(crash), (done, crash)
    si = vch.vsphere()
    vm_names = sorted(vm.name.rsplit("-", 1)[0] for vm in vms_named(si, "crash"))
    assert vm_names == sorted(crash + ["crash-runner"]), "vSphere and docker ps -a disagree"
    # The running container died with the VMs; its log and exit are still there.
    assert inspect_state(vch, "crash-runner")["State"]["Running"] is False
    assert vch.docker("logs", "crash-runner").stdout == "up\n"
    for n in crash:
        r = vch.docker("start", "-a", n)
        assert r.stdout == f"n{n[5:]}\n"
        assert vch.docker("wait", n).stdout.strip() == "0"
    vch.docker("rm", "-f", "crash-runner", *crash)
    assert vms_named(si, "crash") == []


def sysdocker():
    from conftest import DOCKER
    return DOCKER


def test_images_history_save_rmi_load(vch, tmp_path):
    imgs = vch.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "busybox:latest" in imgs
    assert vch.docker("history", "busybox").returncode == 0
    vch.docker("tag", "busybox", "saved:1")
    archive = tmp_path / "saved.tar"
    vch.docker("save", "-o", str(archive), "saved:1")
    assert archive.stat().st_size > 1_000_000
    vch.docker("rmi", "saved:1")
    assert "saved:1" not in vch.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    out = vch.docker("load", "-i", str(archive)).stdout
    assert "saved:1" in out
    assert vch.docker("run", "--rm", "saved:1", "echo", "loaded").stdout == "loaded\n"
    vch.docker("rmi", "saved:1")


def test_rmi_of_image_used_by_a_container_conflicts(vch):
    vch.docker("tag", "busybox", "inuse:1")
    vch.docker("create", "--name", "user", "inuse:1", "true")
    try:
        # Another tag remains: removing this one only untags.
        r = vch.docker("rmi", "inuse:1")
        assert "Untagged: inuse:1" in r.stdout
        pulled = f"{vch.registry}/busybox:latest"
        vch.docker("rmi", "busybox")
        # The last reference of an image a container uses: 409 unless forced.
        r = vch.docker("rmi", pulled, check=False)
        assert r.returncode != 0 and "conflict" in r.stderr.lower(), r.stderr
        assert pulled in vch.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    finally:
        vch.docker("rm", "-f", "user")
        vch.docker("tag", f"{vch.registry}/busybox:latest", "busybox:latest", check=False)


def test_env_workdir_hostname_entrypoint_and_user(vch):
    r = vch.docker("run", "--rm", "-e", "GREETING=hello", "-w", "/tmp/work", "--hostname", "box1",
                   "busybox", "sh", "-c", 'echo $GREETING; pwd; hostname; id -u')
    assert r.stdout.split() == ["hello", "/tmp/work", "box1", "0"]
    r = vch.docker("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert r.stdout == "from entrypoint\n"
    r = vch.docker("run", "--rm", "-u", "4242:4343", "busybox", "id")
    assert "uid=4242" in r.stdout and "gid=4343" in r.stdout
    # --group-add by id and by the image's group name, for the process and for exec.
    r = vch.docker("run", "--rm", "-u", "4242:4343", "--group-add", "777", "--group-add", "root",
                   "busybox", "id", "-G")
    assert sorted(r.stdout.split()) == ["0", "4343", "777"], r.stdout
    r = vch.docker("run", "--rm", "--group-add", "ghosts", "busybox", "true", check=False)
    assert r.returncode != 0 and "unable to find group ghosts" in r.stderr + r.stdout, r


def test_detached_run_stop_and_wait(vch):
    cid = vch.docker("run", "-d", "--name", "bg", "busybox", "sleep", "600").stdout.strip()
    assert len(cid) == 64
    ps = vch.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert "bg Up" in ps
    # As under dockerd, where `sleep` is its namespace's pid 1: a TERM it has no handler for
    # is dropped, and the stop ends in SIGKILL after the timeout: 128+9.
    t0 = time.monotonic()
    vch.docker("stop", "-t", "2", "bg")
    assert time.monotonic() - t0 >= 2, "the TERM did not end it: the timeout did"
    assert vch.docker("wait", "bg").stdout.strip() == "137"
    assert "bg Exited (137)" in vch.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    vch.docker("rm", "bg")
    # With --init the TERM is forwarded, and sleep dies of it at once: 128+15.
    vch.docker("run", "-d", "--init", "--name", "bginit", "busybox", "sleep", "600")
    t0 = time.monotonic()
    vch.docker("stop", "-t", "20", "bginit")
    assert time.monotonic() - t0 < 10
    assert vch.docker("wait", "bginit").stdout.strip() == "143"
    assert vch.docker("inspect", "--format", "{{.HostConfig.Init}}", "bginit").stdout.strip() == "true"
    vch.docker("rm", "bginit")


def test_memory_limit_becomes_the_vm_memory(vch):
    vch.docker("create", "--name", "mem", "-m", "64m", "--cpus", "2", "busybox", "true")
    si = vch.vsphere()
    [vm] = vms_named(si, "mem-")
    assert vm.config.hardware.memoryMB == 64
    assert vm.config.hardware.numCPU == 2
    vch.docker("rm", "mem")




def inspect_state(vch, name):
    return json.loads(vch.docker("container", "inspect", name).stdout)[0]


def test_restart_policy_on_failure_retries_then_gives_up(vch):
    vch.docker("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 1")
    assert wait_for(lambda: inspect_state(vch, "flaky")["RestartCount"] == 2
                    and inspect_state(vch, "flaky")["State"]["Status"] == "exited")
    # allow-sleep: "no third restart" is the claim: nothing may happen for a while.
    time.sleep(1)
    assert inspect_state(vch, "flaky")["RestartCount"] == 2
    assert vch.docker("logs", "flaky").stdout == "try\ntry\ntry\n"
    vch.docker("rm", "flaky")


def test_restart_always_survives_a_vch_restart_and_stop_holds_it(vch):
    vch.docker("run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 1")
    assert wait_for(lambda: inspect_state(vch, "always")["RestartCount"] >= 1)
    vch.stop(kill=True)
    vch.start()
    # After the VCH's own restart the policy is still enforced.
    assert wait_for(lambda: inspect_state(vch, "always")["State"]["Status"] == "running")
    vch.docker("stop", "always")
    # allow-sleep: "the policy does not restart it" is the claim: nothing may happen for a while.
    time.sleep(2)
    assert inspect_state(vch, "always")["State"]["Status"] == "exited", "a user stop holds the policy"
    vch.docker("rm", "always")


def test_rename_pause_unpause_restart(vch):
    vch.docker("run", "-d", "--name", "before", "busybox", "sleep", "600")
    vch.docker("rename", "before", "after")
    assert inspect_state(vch, "after")["Name"] == "/after"
    vch.docker("pause", "after")
    st = inspect_state(vch, "after")["State"]
    assert st["Paused"] is True and st["Status"] == "paused"
    si = vch.vsphere()
    [vm] = vms_named(si, "before-")
    assert vm.runtime.powerState == "suspended"
    vch.docker("unpause", "after")
    assert inspect_state(vch, "after")["State"]["Status"] == "running"
    vch.docker("restart", "-t", "1", "after")
    assert inspect_state(vch, "after")["State"]["Status"] == "running"
    # The rename survives a VCH restart (kept outside guestinfo, which is volatile).
    vch.stop(kill=True)
    vch.start()
    assert inspect_state(vch, "after")["Name"] == "/after"
    vch.docker("rm", "-f", "after")


def test_events_report_the_lifecycle(vch):
    since = str(int(time.time()) - 1)
    vch.docker("run", "--rm", "--name", "evented", "busybox", "true")
    until = str(int(time.time()) + 1)
    out = vch.docker("events", "--since", since, "--until", until, "--filter", "container=evented",
                     "--format", "{{.Action}}").stdout.split()
    assert out[:4] == ["create", "start", "die", "destroy"], out


def test_exec_runs_in_the_container_with_its_own_output_and_exit_code(vch):
    vch.docker("run", "-d", "--name", "ex", "-e", "FROM_RUN=1", "busybox", "sh", "-c",
               "echo created > /tmp/marker; sleep 600")
    assert wait_for(lambda: vch.docker("exec", "ex", "cat", "/tmp/marker", check=False).stdout == "created\n")
    r = vch.docker("exec", "-e", "X=2", "-w", "/tmp", "ex", "sh", "-c", "echo $FROM_RUN$X; pwd; echo err >&2; exit 5",
                   check=False)
    assert r.returncode == 5
    assert r.stdout == "12\n/tmp\n" and r.stderr == "err\n"
    # dockerd: 126 for any exec that cannot start, missing or not executable.
    r = vch.docker("exec", "ex", "no-such-tool", check=False)
    assert r.returncode == 126 and "executable file not found" in r.stderr, r
    r = vch.docker("exec", "ex", "/etc/passwd", check=False)
    assert r.returncode == 126 and "permission denied" in r.stderr, r
    vch.docker("rm", "-f", "ex")


def test_stop_signal_is_delivered_gracefully_and_kill_sends_signals(vch):
    vch.docker("run", "-d", "--name", "graceful", "busybox", "sh", "-c",
               "trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done")
    assert wait_for(lambda: vch.docker("exec", "graceful", "true", check=False).returncode == 0)
    vch.docker("stop", "graceful")
    assert vch.docker("wait", "graceful").stdout.strip() == "3"
    assert vch.docker("logs", "graceful").stdout == "bye\n"
    vch.docker("rm", "graceful")
    vch.docker("run", "-d", "--name", "usr1", "busybox", "sh", "-c",
               "trap 'echo got-usr1; exit 0' USR1; while true; do sleep 0.1; done")
    assert wait_for(lambda: vch.docker("exec", "usr1", "true", check=False).returncode == 0)
    vch.docker("kill", "-s", "USR1", "usr1")
    assert vch.docker("wait", "usr1").stdout.strip() == "0"
    assert vch.docker("logs", "usr1").stdout == "got-usr1\n"
    vch.docker("rm", "usr1")
