"""Named and anonymous volumes through the real docker CLI: each volume is a VMDK on the
datastore, attached to the container VMs that mount it, and outlives them."""

import json

from pyVmomi import vim

from test_docker_run import vms_named


def volumes(vch):
    return vch.docker("volume", "ls", "-q").stdout.split()


def test_named_volume_keeps_data_across_containers(vch):
    vch.docker("volume", "create", "data1")
    assert "data1" in volumes(vch)
    info = json.loads(vch.docker("volume", "inspect", "data1").stdout)[0]
    assert info["Driver"] == "local"
    assert info["Mountpoint"].endswith("vch/volumes/data1/data1.vmdk")
    vch.docker("run", "--name", "writer", "-v", "data1:/data", "busybox",
               "sh", "-c", "echo persisted > /data/f")
    # The container VM has the volume's disk, independent of snapshots.
    si = vch.vsphere()
    [vm] = vms_named(si, "writer-")
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    [vol] = [d for d in disks if "/volumes/data1/" in d.backing.fileName]
    assert vol.backing.diskMode == "independent_persistent"
    mounts = json.loads(vch.docker("inspect", "writer").stdout)[0]["Mounts"]
    assert mounts[0]["Name"] == "data1" and mounts[0]["Destination"] == "/data" and mounts[0]["RW"]
    # Removing the container (whose VM is destroyed) keeps the volume's disk.
    vch.docker("rm", "writer")
    r = vch.docker("run", "--rm", "-v", "data1:/data", "busybox", "cat", "/data/f")
    assert r.stdout == "persisted\n"
    r = vch.docker("run", "--rm", "-v", "data1:/data:ro", "busybox", "sh", "-c", "echo x > /data/g",
                   check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stdout + r.stderr
    vch.docker("volume", "rm", "data1")
    assert "data1" not in volumes(vch)


def test_volume_in_use_cannot_be_removed_or_shared_by_running_vms(vch):
    vch.docker("run", "-d", "--name", "holder", "-v", "busy1:/d", "busybox", "sleep", "600")
    assert "busy1" in volumes(vch)  # created on first use, as dockerd does
    r = vch.docker("volume", "rm", "busy1", check=False)
    assert r.returncode != 0 and "volume is in use" in r.stderr
    r = vch.docker("create", "-v", "busy1:/x", "busybox", "true", check=False)
    assert r.returncode != 0 and "in use by container" in r.stderr
    vch.docker("rm", "-f", "holder")
    vch.docker("volume", "rm", "busy1")


def test_anonymous_volumes_go_with_rm_v_and_run_rm(vch):
    vch.docker("create", "--name", "anon", "-v", "/cache", "busybox", "true")
    [m] = json.loads(vch.docker("inspect", "anon").stdout)[0]["Mounts"]
    assert m["Destination"] == "/cache" and len(m["Name"]) == 64
    assert m["Name"] in volumes(vch)
    vch.docker("rm", "-v", "anon")
    assert m["Name"] not in volumes(vch)
    before = set(volumes(vch))
    r = vch.docker("run", "--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo hi > /scratch/x; cat /scratch/x")
    assert r.stdout == "hi\n"
    assert set(volumes(vch)) == before


def test_bad_volume_requests_are_refused_by_name(vch):
    r = vch.docker("volume", "create", "../etc", check=False)
    assert r.returncode != 0 and "invalid characters" in r.stderr
    r = vch.docker("volume", "create", "--opt", "type=nfs", "v-opt", check=False)
    assert r.returncode != 0 and "not supported" in r.stderr
    r = vch.docker("run", "--rm", "--tmpfs", "/t:huge=always", "busybox", "true", check=False)
    assert r.returncode != 0 and 'invalid tmpfs option "huge=always"' in r.stderr, r.stderr
    r = vch.docker("run", "--rm", "-v", "[datastore1] vols/v.vmdk:/x", "busybox", "true", check=False)
    assert r.returncode != 0 and "datastore paths" in r.stderr, r.stderr
    r = vch.docker("volume", "inspect", "nosuchvol", check=False)
    assert r.returncode != 0 and "no such volume" in r.stderr.lower()


def test_volume_prune_removes_unused_anonymous_volumes(vch):
    vch.docker("volume", "create", "keepme")
    vch.docker("create", "--name", "pr", "-v", "/p", "busybox", "true")
    anon = json.loads(vch.docker("inspect", "pr").stdout)[0]["Mounts"][0]["Name"]
    vch.docker("rm", "pr")  # without -v: the anonymous volume stays, unused
    assert anon in volumes(vch)
    out = vch.docker("volume", "prune", "-f").stdout
    assert anon in out
    assert anon not in volumes(vch) and "keepme" in volumes(vch)
    vch.docker("volume", "rm", "keepme")


def test_tmpfs_mounts_are_memory_file_systems_with_dockerds_defaults(vch):
    # Writable under --read-only; noexec,nosuid,nodev unless asked otherwise; sized.
    script = ("grep -E ' /(run|cache|fast) ' /proc/mounts; echo x > /run/f && cat /run/f; "
              "touch /etc/nope 2>/dev/null || echo root-read-only")
    r = vch.docker("run", "--rm", "--read-only", "--tmpfs", "/run:size=1m",
                   "--tmpfs", "/fast:exec,mode=755",
                   "--mount", "type=tmpfs,destination=/cache,tmpfs-size=4096",
                   "busybox", "sh", "-c", script)
    mounts = {line.split()[1]: line.split() for line in r.stdout.splitlines() if line.startswith("tmpfs")}
    assert set(mounts) == {"/run", "/cache", "/fast"}, r.stdout
    run_opts = mounts["/run"][3].split(",")
    assert {"rw", "nosuid", "nodev", "noexec", "size=1024k"} <= set(run_opts), run_opts
    assert "size=4k" in mounts["/cache"][3], mounts["/cache"]
    fast = mounts["/fast"][3].split(",")
    assert "noexec" not in fast and "mode=755" in fast, fast
    assert "x\nroot-read-only\n" in r.stdout
