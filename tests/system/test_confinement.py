"""A container's root is hostile: everything it tries against the host that runs its VM
fails (escape_battery.sh), its limits hold, and every confinement option is honoured or
refused with a 400 naming it. Driven with the real docker CLI against `vch serve`."""

import json
import os
import uuid
from pathlib import Path

import pytest

from test_docker_run import inspect_state as inspect

BATTERY = Path(__file__).with_name("escape_battery.sh")


def run_battery(vch, *flags):
    r = vch.docker("run", "--rm", "-i", *flags, "busybox", "sh", input_file=BATTERY)
    lines = r.stdout.split("\n")
    assert "done" in lines, f"the battery did not finish: {r.stdout} {r.stderr}"
    return {name: verdict for name, verdict in (l.split(" ", 1) for l in lines if " " in l)}


def test_every_escape_attempt_of_container_root_fails(vch):
    results = run_battery(vch)
    assert len(results) >= 30, results
    escaped = [name for name, verdict in results.items() if verdict != "blocked"]
    assert escaped == [], f"container root escaped through: {escaped}"


def test_an_exec_is_confined_like_the_main_process(vch):
    vch.docker("run", "-d", "--name", "conf-exec", "busybox", "sleep", "600")
    try:
        r = vch.docker("exec", "-i", "conf-exec", "sh", input_file=BATTERY)
        escaped = [l for l in r.stdout.split("\n") if l.endswith("ESCAPED")]
        assert "done" in r.stdout and escaped == [], r.stdout
    finally:
        vch.docker("rm", "-f", "conf-exec")


def status_fields(vch, *flags, cmd="cat /proc/self/status"):
    out = vch.docker("run", "--rm", *flags, "busybox", "sh", "-c", cmd).stdout
    return dict(l.split(":\t", 1) for l in out.splitlines() if ":\t" in l)


def test_root_has_dockers_default_capabilities_no_new_privs_and_seccomp(vch):
    s = status_fields(vch)
    assert s["CapEff"] == "00000000a80425fb"
    assert s["CapBnd"] == "00000000a80425fb"
    assert s["CapInh"] == "0000000000000000"
    assert s["CapAmb"] == "0000000000000000"
    assert s["NoNewPrivs"] == "1"
    assert s["Seccomp"] == "2"


def test_a_non_root_user_has_no_effective_capabilities(vch):
    s = status_fields(vch, "-u", "65534")
    assert s["CapEff"] == "0000000000000000" and s["CapPrm"] == "0000000000000000"
    assert s["CapBnd"] == "00000000a80425fb"


def test_cap_add_and_cap_drop_are_honoured(vch):
    s = status_fields(vch, "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--cap-drop", "MKNOD")
    eff = int(s["CapEff"], 16)
    assert eff & (1 << 12), "NET_ADMIN added"
    assert not eff & 1 and not eff & (1 << 27), "CHOWN and MKNOD dropped"
    assert status_fields(vch, "--cap-drop", "ALL")["CapBnd"] == "0000000000000000"
    r = vch.docker("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "65534", "/tmp", check=False)
    assert r.returncode != 0, "chown without CAP_CHOWN must fail"


def test_only_stdio_reaches_the_container(vch):
    fds = vch.docker("run", "--rm", "busybox", "ls", "/proc/self/fd").stdout.split()
    # 3 is ls's own handle on the directory it lists.
    assert sorted(fds) == ["0", "1", "2", "3"], fds


@pytest.mark.parametrize("flags, option", [
    (["--privileged"], "--privileged"),
    (["--cap-add", "SYS_ADMIN"], "SYS_ADMIN"),
    (["--cap-add", "ALL"], "ALL"),
    (["--security-opt", "seccomp=unconfined"], "seccomp"),
    (["--security-opt", "apparmor=unconfined"], "apparmor"),
    (["--device", "/dev/loop0"], "--device"),
    (["--pid", "host"], "--pid"),
    (["--ipc", "host"], "--ipc"),
    (["--uts", "host"], "--uts"),
    (["--sysctl", "net.ipv4.ip_forward=1"], "--sysctl"),
    (["--oom-kill-disable", "-m", "64m"], "--oom-kill-disable"),
    (["--cgroupns", "host"], "--cgroupns"),
    (["--ulimit", "nofile=10:10"], "--ulimit"),
    (["--memory-swap", "1g"], "Memory limit"),
])
def test_options_that_cannot_be_honoured_are_refused_by_name(vch, flags, option):
    r = vch.docker("create", *flags, "busybox", "true", check=False)
    assert r.returncode != 0, f"{flags} must be refused"
    assert option in r.stderr, r.stderr
    assert "Error response from daemon" in r.stderr  # a 400 from the VCH, not a CLI error


def test_no_new_privileges_opt_and_matching_memory_swap_are_accepted(vch):
    r = vch.docker("run", "--rm", "--security-opt", "no-new-privileges", "-m", "64m",
                   "--memory-swap", "64m", "busybox", "echo", "ok")
    assert r.stdout == "ok\n"


def test_read_only_root_keeps_dev_shm_writable(vch):
    r = vch.docker("run", "--rm", "--read-only", "busybox", "sh", "-c",
                   "touch /x 2>/dev/null && echo root-writable; touch /dev/shm/x && echo shm-ok")
    assert r.stdout == "shm-ok\n", r.stdout


def spawn_count(vch, attempts, *flags):
    """How many processes the container has after trying to start `attempts` more (a
    subshell forks until it cannot; the count uses shell builtins only, since at the
    limit nothing else can fork), or None when the VM's memory ran out first (137)."""
    script = (f"(n=0; while [ $n -lt {attempts} ]; do sleep 30 & n=$((n+1)); done) 2>/dev/null; "
              "c=0; for p in /proc/[0-9]*; do c=$((c+1)); done; echo started=$c")
    r = vch.docker("run", "--rm", *flags, "busybox", "sh", "-c", script, check=False)
    if r.returncode == 137 and not r.stdout:
        return None
    assert r.stdout.startswith("started="), (r.returncode, r.stdout, r.stderr)
    return int(r.stdout.strip().split("=")[1])


def test_pids_limit_holds(vch):
    started = spawn_count(vch, 60, "--pids-limit", "20")
    # pid 1 (the VM's agent) is outside the container's group: 20 + 1 at most.
    assert started is not None and 15 <= started <= 21, started


def test_a_fork_bomb_is_bounded_by_the_vms_size_without_a_limit(vch):
    # A 128 MB VM's kernel has room for 1,024 tasks (8 per MB); tiny processes cost about
    # as much memory each, so either bound may stop the bomb first. Both are the VM's.
    started = spawn_count(vch, 3000, "-m", "128m")
    assert started is None or 900 <= started <= 1024, started
    assert vch.docker("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"


def test_a_memory_limit_holds_and_reports_oom_killed(vch):
    name = "oom-" + uuid.uuid4().hex[:6]
    r = vch.docker("run", "--name", name, "-m", "64m", "busybox", "sh", "-c",
                   "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived", check=False)
    try:
        assert "survived" not in r.stdout
        assert r.returncode == 137
        st = inspect(vch, name)["State"]
        assert st["OOMKilled"] is True and st["ExitCode"] == 137
    finally:
        vch.docker("rm", "-f", name)


def test_a_plain_exit_is_not_an_oom_kill(vch):
    name = "nooom-" + uuid.uuid4().hex[:6]
    vch.docker("run", "--name", name, "busybox", "sh", "-c", "kill -9 $$", check=False)
    try:
        st = inspect(vch, name)["State"]
        assert st["ExitCode"] == 137 and st["OOMKilled"] is False
    finally:
        vch.docker("rm", "-f", name)


def test_the_container_sees_its_cgroup_as_the_root(vch):
    out = vch.docker("run", "--rm", "busybox", "cat", "/proc/self/cgroup").stdout
    assert all(l.endswith(":/") for l in out.splitlines()), out


def test_meminfo_and_nproc_show_the_vms_size(vch):
    out = vch.docker("run", "--rm", "-m", "64m", "busybox", "sh", "-c",
                     "grep MemTotal /proc/meminfo; nproc").stdout.split("\n")
    assert out[0].split()[1] == str(64 * 1024), out
    assert out[1] == "1", out
    host_cpus = os.cpu_count()
    two = vch.docker("run", "--rm", "--cpus", "2", "busybox", "nproc").stdout.strip()
    assert two == str(min(2, host_cpus))


def test_meminfo_follows_the_vms_use(vch):
    name = "meminfo-" + uuid.uuid4().hex[:6]
    vch.docker("run", "-d", "--name", name, "-m", "128m", "busybox", "sleep", "600")
    try:
        def free_kb():
            out = vch.docker("exec", name, "grep", "MemAvailable", "/proc/meminfo").stdout
            return int(out.split()[1])
        before = free_kb()
        vch.docker("exec", name, "sh", "-c", "head -c 40000000 /dev/zero > /dev/shm/fill")
        from test_docker_run import wait_for
        assert wait_for(lambda: free_kb() < before - 30000, timeout=10), (before, free_kb())
    finally:
        vch.docker("rm", "-f", name)
