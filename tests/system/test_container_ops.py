"""docker top, stats, update, cp and export through the real docker CLI: answered by the
container's tether over the control channel, and by vSphere for the VM's size."""

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time

from test_docker_run import inspect_state as inspect
from test_docker_run import vms_named, wait_for


def test_top_lists_the_container_processes(vch):
    vch.docker("run", "-d", "--name", "topc", "busybox", "sleep", "600")
    def rows():
        out = vch.docker("top", "topc").stdout.splitlines()
        assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        return [l.split(None, 7) for l in out[1:]]
    # `run -d` returns once the VM runs; the process may be a moment from its exec.
    assert wait_for(lambda: any(r[0] == "root" and r[7] == "sleep 600" for r in rows()), 10), rows()
    vch.docker("exec", "topc", "sh", "-c", "sleep 500 </dev/null >/dev/null 2>&1 &")
    assert wait_for(lambda: any(r[7] == "sleep 500" for r in rows()), 10), rows()
    # The tether (pid 1, the guest agent) is not a container process.
    assert all(r[1] != "1" for r in rows())
    r = vch.docker("top", "topc", "aux", check=False)
    assert r.returncode != 0 and "not supported" in r.stderr and "aux" in r.stderr
    vch.docker("rm", "-f", "topc")
    vch.docker("create", "--name", "topoff", "busybox", "true")
    r = vch.docker("top", "topoff", check=False)
    assert r.returncode != 0 and "is not running" in r.stderr
    vch.docker("rm", "topoff")


def test_stats_shows_the_vm_memory_as_limit_and_a_busy_cpu(vch):
    vch.docker("run", "-d", "--name", "busy", "-m", "96m", "--cpus", "1", "busybox",
               "sh", "-c", "while :; do :; done")
    out = vch.docker("stats", "--no-stream", "--format", "{{json .}}", "busy").stdout
    row = json.loads(out)
    assert row["Name"] == "busy"
    assert row["MemUsage"].endswith("/ 96MiB"), row
    cpu = float(row["CPUPerc"].rstrip("%"))
    # One vCPU spinning is ~100 %; the margin is for a loaded 2-core test machine.
    assert cpu > 35, row
    assert row["PIDs"] == "1", row
    vch.docker("rm", "-f", "busy")


def stream_samples(vch, name, n):
    """The first `n` samples of the streaming stats API (the CLI's live view)."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(vch.sock))
    s.sendall(f"GET /v1.50/containers/{name}/stats?stream=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    f = s.makefile("rb")
    assert b" 200 " in f.readline()
    while f.readline() not in (b"\r\n", b""):
        pass
    out = []
    while len(out) < n:
        size = int(f.readline().strip(), 16)  # chunked: one JSON line per chunk or more
        data = f.read(size)
        f.readline()
        out += [json.loads(l) for l in data.splitlines() if l.strip()]
    s.close()
    return out


def test_stats_of_an_idle_container_is_low_and_streams(vch):
    vch.docker("run", "-d", "--name", "idle", "-m", "64m", "busybox", "sleep", "600")
    row = json.loads(vch.docker("stats", "--no-stream", "--format", "{{json .}}", "idle").stdout)
    assert float(row["CPUPerc"].rstrip("%")) < 5, row
    assert row["MemUsage"].endswith("/ 64MiB"), row
    a, b = stream_samples(vch, "idle", 2)
    # Each sample's precpu is the previous sample.
    assert b["preread"] == a["read"]
    assert b["precpu_stats"]["cpu_usage"]["total_usage"] == a["cpu_stats"]["cpu_usage"]["total_usage"]
    assert b["precpu_stats"]["system_cpu_usage"] == a["cpu_stats"]["system_cpu_usage"]
    assert b["cpu_stats"]["system_cpu_usage"] > a["cpu_stats"]["system_cpu_usage"]
    assert b["memory_stats"]["limit"] == 64 << 20 and b["pids_stats"]["current"] == 1
    # Paused: the VM is suspended, its guest cannot answer; vSphere still knows the limit.
    vch.docker("pause", "idle")
    row = json.loads(vch.docker("stats", "--no-stream", "--format", "{{json .}}", "idle").stdout)
    assert row["CPUPerc"] == "0.00%" and row["MemUsage"].endswith("/ 64MiB"), row
    r = vch.docker("update", "-m", "128m", "idle", check=False)
    assert r.returncode != 0 and "suspended" in r.stderr, r.stderr
    vch.docker("unpause", "idle")
    vch.docker("rm", "-f", "idle")


def test_update_resizes_the_vm_and_keeps_the_restart_policy(vch):
    vch.docker("run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "600")
    vch.docker("update", "-m", "128m", "--cpus", "2", "--restart", "on-failure:3", "upd")
    si = vch.vsphere()
    [vm] = vms_named(si, "upd-")
    assert vm.config.hardware.memoryMB == 128
    assert vm.config.hardware.numCPU == 2
    assert vm.config.memoryHotAddEnabled and vm.config.cpuHotAddEnabled
    hc = inspect(vch, "upd")["HostConfig"]
    assert hc["Memory"] == 128 << 20 and hc["NanoCpus"] == 2_000_000_000
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    row = json.loads(vch.docker("stats", "--no-stream", "--format", "{{json .}}", "upd").stdout)
    assert row["MemUsage"].endswith("/ 128MiB"), row
    # vSphere cannot take memory away from a running VM: refused, and nothing changed.
    r = vch.docker("update", "-m", "32m", "upd", check=False)
    assert r.returncode != 0 and "memory can only grow" in r.stderr, r.stderr
    assert inspect(vch, "upd")["HostConfig"]["Memory"] == 128 << 20
    # Fields a VM cannot honour are named, not ignored.
    r = vch.docker("update", "--cpu-shares", "512", "upd", check=False)
    assert r.returncode != 0 and "CpuShares" in r.stderr and "not supported" in r.stderr
    # The record lives in vSphere: a VCH killed and restarted still knows it.
    vch.stop(kill=True)
    vch.start()
    hc = inspect(vch, "upd")["HostConfig"]
    assert hc["RestartPolicy"]["Name"] == "on-failure" and hc["Memory"] == 128 << 20
    vch.docker("rm", "-f", "upd")


def test_updated_restart_policy_takes_effect(vch):
    vch.docker("run", "-d", "--name", "rp", "busybox", "sh", "-c", "sleep 2; exit 3")
    vch.docker("update", "--restart", "on-failure:1", "rp")
    # The policy restarts it once (each run lasts 2 s), then leaves it exited.
    assert wait_for(lambda: inspect(vch, "rp")["RestartCount"] == 1, 60)
    assert wait_for(lambda: inspect(vch, "rp")["State"]["Status"] == "running", 10)
    assert vch.docker("wait", "rp").stdout.strip() == "3"
    # allow-sleep: "no second restart" is the claim: nothing may happen for a while.
    time.sleep(1)
    assert inspect(vch, "rp")["RestartCount"] == 1
    assert inspect(vch, "rp")["State"]["Status"] == "exited"
    r = vch.docker("update", "--restart", "sometimes", "rp", check=False)
    assert r.returncode != 0
    vch.docker("rm", "rp")
    vch.docker("create", "--rm", "--name", "rprm", "busybox", "true")
    r = vch.docker("update", "--restart", "always", "rprm", check=False)
    assert r.returncode != 0 and "AutoRemove" in r.stderr
    vch.docker("rm", "rprm")


HOG = "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo survived ${#x}"


def test_update_memory_is_enforced(vch):
    # Lowered while stopped: the VM boots with the new size and a 60 MB hog is killed.
    vch.docker("create", "--name", "hog", "-m", "512m", "busybox", "sh", "-c", HOG)
    vch.docker("update", "-m", "32m", "hog")
    vch.docker("start", "hog")
    assert vch.docker("wait", "hog").stdout.strip() == "137"
    vch.docker("rm", "hog")
    # Grown while running (memory hot add): the same hog now fits.
    vch.docker("run", "-d", "--name", "grow", "-m", "32m", "busybox", "sh", "-c",
               "while [ ! -e /go ]; do sleep 0.1; done; " + HOG)
    vch.docker("update", "-m", "512m", "grow")
    vch.docker("exec", "grow", "touch", "/go")
    assert vch.docker("wait", "grow").stdout.strip() == "0"
    assert "survived 60000000" in vch.docker("logs", "grow").stdout
    vch.docker("rm", "grow")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def test_cp_both_ways_and_export(vch, tmp_path):
    vch.docker("run", "-d", "--name", "cpc", "busybox", "sleep", "600")
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "hello.txt").write_text("hello\n")
    os.symlink("sub/hello.txt", src / "link")
    big = src / "big.bin"
    big.write_bytes(os.urandom(20 << 20))
    want = sha256(big)
    vch.docker("cp", str(src), "cpc:/tmp/")
    got = vch.docker("exec", "cpc", "sha256sum", "/tmp/data/big.bin").stdout.split()[0]
    assert got == want
    assert vch.docker("exec", "cpc", "cat", "/tmp/data/link").stdout == "hello\n"
    # And back out, a directory and a single file.
    out = tmp_path / "out"
    out.mkdir()
    vch.docker("cp", "cpc:/tmp/data", str(out))
    assert sha256(out / "data" / "big.bin") == want
    assert (out / "data" / "sub" / "hello.txt").read_text() == "hello\n"
    assert os.readlink(out / "data" / "link") == "sub/hello.txt"
    vch.docker("cp", "cpc:/etc/hostname", str(out / "hn"))
    assert (out / "hn").read_text().strip() == inspect(vch, "cpc")["Config"]["Hostname"]
    r = vch.docker("cp", "cpc:/nonexistent", str(out), check=False)
    assert r.returncode != 0 and "Could not find the file /nonexistent" in r.stderr
    # Export: the container's files, without the contents of /proc.
    exp = tmp_path / "exp.tar"
    with open(exp, "wb") as f:
        subprocess.run([*vch_cmd(vch), "export", "cpc"], stdout=f, check=True, timeout=120)
    with tarfile.open(exp) as t:
        members = {m.name.rstrip("/"): m for m in t.getmembers()}
    assert "bin/busybox" in members and members["tmp/data/big.bin"].size == 20 << 20
    assert members["bin/ls"].issym() and members["proc"].isdir()
    assert not any(n.startswith("proc/") or n.startswith("sys/") for n in members)
    vch.docker("rm", "-f", "cpc")
    vch.docker("create", "--name", "cpoff", "busybox", "true")
    r = vch.docker("cp", "cpoff:/etc/hostname", str(out), check=False)
    assert r.returncode != 0 and "needs a running container" in r.stderr
    r = vch.docker("export", "cpoff", check=False)
    assert r.returncode != 0 and "needs a running container" in r.stderr
    vch.docker("rm", "cpoff")


def vch_cmd(vch):
    from conftest import DOCKER
    return [DOCKER, "-H", f"unix://{vch.sock}"]


def hostile(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, target in entries:
            ti = tarfile.TarInfo(name)
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, target
                t.addfile(ti)
            else:
                ti.size = 5
                t.addfile(ti, io.BytesIO(b"evil\n"))
    return buf.getvalue()


def test_cp_refuses_a_hostile_tar(vch):
    vch.docker("run", "-d", "--name", "hostile", "busybox", "sleep", "600")
    vch.docker("exec", "hostile", "mkdir", "-p", "/tmp/in")
    for entries, why in [
        ([("../../escaped", "file", None)], "'..'"),
        ([("l", "sym", "/"), ("l/escaped", "file", None)], "below a symlink"),
        ([("l2", "sym", "../../.."), ], "points out"),
    ]:
        r = subprocess.run([*vch_cmd(vch), "cp", "-", "hostile:/tmp/in"], input=hostile(entries),
                           capture_output=True, timeout=60)
        assert r.returncode != 0, entries
        assert b"refusing archive entry" in r.stderr and why.encode() in r.stderr, r.stderr
    ls = vch.docker("exec", "hostile", "ls", "/", "/tmp").stdout
    assert "escaped" not in ls
    # A refusal before the body is read answers at once instead of stalling the upload.
    body = hostile([("big", "file", None)]) + os.urandom(4 << 20)
    for path, status in (("/nonexistent", 404), ("/etc/passwd", 400)):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                            "--unix-socket", str(vch.sock), "-X", "PUT", "--data-binary", "@-",
                            f"http://x/v1.50/containers/hostile/archive?path={path}"],
                           input=body, capture_output=True, timeout=60)
        assert r.stdout.decode() == str(status), (path, r)
    vch.docker("rm", "-f", "hostile")


def test_cp_cli_forms(vch, tmp_path):
    """The docker CLI's own path rules on top of HEAD/GET/PUT: renaming, `dir/.`, stdout."""
    vch.docker("run", "-d", "--name", "cpf", "busybox", "sleep", "600")
    f = tmp_path / "one.txt"
    f.write_text("one\n")
    vch.docker("cp", str(f), "cpf:/tmp/renamed.txt")
    assert vch.docker("exec", "cpf", "cat", "/tmp/renamed.txt").stdout == "one\n"
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_text("a\n")
    vch.docker("exec", "cpf", "mkdir", "/tmp/into")
    vch.docker("cp", f"{d}/.", "cpf:/tmp/into")
    assert vch.docker("exec", "cpf", "cat", "/tmp/into/a").stdout == "a\n"
    back = tmp_path / "back"
    vch.docker("cp", "cpf:/tmp/into/.", str(back))
    assert (back / "a").read_text() == "a\n"
    # To stdout: a tar stream.
    r = subprocess.run([*vch_cmd(vch), "cp", "cpf:/tmp/renamed.txt", "-"], capture_output=True, timeout=60)
    assert r.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.extractfile("renamed.txt").read() == b"one\n"
    # -L follows a symlink in the container.
    vch.docker("exec", "cpf", "ln", "-s", "/tmp/renamed.txt", "/tmp/ln")
    vch.docker("cp", "-L", "cpf:/tmp/ln", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "one\n"
    r = vch.docker("cp", str(f), "cpf:/nonexistent/dir/x", check=False)
    assert r.returncode != 0
    vch.docker("rm", "-f", "cpf")
