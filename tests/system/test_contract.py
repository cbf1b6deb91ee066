"""The container VM contract end to end (docs/container-vm.md): a spec larger than one
guestinfo value is written as numbered chunks by the VCH, joined by the tether, and read
back by a restarted VCH."""

import json

import conftest as sysenv

BIG = 70_000  # over one value's 60 KiB, and under Linux's 128 KiB for one env string


def test_a_large_spec_is_chunked_run_and_recovered(vch):
    value = "x" * BIG
    vch.docker("create", "--name", "bigspec", "-e", f"BIG={value}", "busybox",
               "sh", "-c", 'echo "${#BIG}"')
    extra = {o.key: o.value for o in sysenv.vm_named(vch.vsphere(), "bigspec-").config.extraConfig}
    assert "guestinfo.vch.spec" not in extra
    n = int(extra["guestinfo.vch.spec.chunks"])
    assert n >= 2
    parts = [extra[f"guestinfo.vch.spec.{i}"] for i in range(n)]
    assert all(len(p.encode()) <= 60 * 1024 for p in parts)
    spec = json.loads("".join(parts))
    assert f"BIG={value}" in spec["env"]
    # The tether joins the chunks: the process sees the whole variable.
    r = vch.docker("start", "-a", "bigspec")
    assert r.stdout == f"{BIG}\n", r.stderr
    # A restarted VCH rebuilds the container from its chunked spec and can run it again.
    vch.stop()
    vch.start()
    r = vch.docker("start", "-a", "bigspec")
    assert r.stdout == f"{BIG}\n", r.stderr
    vch.docker("rm", "bigspec")
