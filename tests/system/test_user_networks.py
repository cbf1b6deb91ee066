"""User-defined networks through the real docker CLI: each one a vSphere port group made
and removed by the VCH (checked with pyvmomi), addresses from its own pool, containers on
several networks with one NIC each, connect/disconnect, --ip, aliases, /etc/hosts and
/etc/resolv.conf entries, and the errors dockerd gives for what cannot be done."""

import json

from pyVmomi import vim

import conftest as sysenv


def inspect(vch, *names):
    return json.loads(vch.docker("inspect", *names).stdout)


def net_inspect(vch, name):
    return json.loads(vch.docker("network", "inspect", name).stdout)[0]


def portgroups(vch):
    si = vch.vsphere()
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.Network], True)
    try:
        return sorted(n.name for n in view.view)
    finally:
        view.Destroy()


def nics_of(vch, prefix):
    vm = sysenv.vm_named(vch.vsphere(), prefix)
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def test_network_lifecycle_is_a_port_group_lifecycle(vch):
    r = vch.docker("network", "create", "--label", "team=a", "lifecycle")
    net_id = r.stdout.strip()
    assert len(net_id) == 64
    n = net_inspect(vch, "lifecycle")
    assert n["Id"] == net_id and n["Driver"] == "bridge" and n["Scope"] == "local"
    assert n["Labels"] == {"team": "a"}
    assert n["Options"] == {}  # as created (Compose compares them)
    pg = "vch-lifecycle"  # the VCH's name, the network's
    assert pg in portgroups(vch)
    cfg = n["IPAM"]["Config"][0]
    assert cfg["Subnet"].startswith("172.") and cfg["Subnet"] != "172.17.0.0/16"
    names = vch.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "none", "lifecycle"} <= set(names)
    assert vch.docker("network", "ls", "-q", "--filter", "label=team=a").stdout.split() == [net_id[:12]]
    again = vch.docker("network", "create", "lifecycle", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    vch.docker("network", "rm", "lifecycle")
    assert pg not in portgroups(vch)
    gone = vch.docker("network", "inspect", "lifecycle", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr
    # prune: unused user networks go (with their port groups); used and built-in ones stay.
    vch.docker("network", "create", "prunable")
    vch.docker("network", "create", "inuse")
    vch.docker("create", "--name", "holder", "--network", "inuse", "busybox", "true")
    try:
        out = vch.docker("network", "prune", "-f").stdout
        assert "prunable" in out and "inuse" not in out, out
        assert "vch-prunable" not in portgroups(vch) and "vch-inuse" in portgroups(vch)
        assert vch.docker("network", "inspect", "bridge").returncode == 0
    finally:
        vch.docker("rm", "-f", "holder", check=False)
        vch.docker("network", "rm", "inuse", "prunable", check=False)


def test_two_networks_addresses_aliases_and_hosts(vch):
    vch.docker("network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", "front")
    vch.docker("network", "create", "--subnet", "10.78.0.0/24", "back")
    try:
        vch.docker("run", "-d", "--name", "srv", "--network", "front", "--ip", "10.77.0.10",
                   "--network-alias", "web", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
        # A second network, connected while the container is stopped, before its start.
        vch.docker("create", "--name", "cli", "--network", "back", "--add-host", "ext.example:192.0.2.7",
                   "--dns-search", "corp.example", "--dns-option", "ndots:2", "busybox",
                   "sh", "-c", "cat /etc/hosts /etc/resolv.conf; ls /sys/class/net | tr '\\n' ' '; echo;"
                   "ip -o -4 addr | awk '{print $2, $4}'; wget -q -O - http://10.77.0.10/hostname")
        vch.docker("network", "connect", "--alias", "client", "front", "cli")
        c = inspect(vch, "cli")[0]
        nets = c["NetworkSettings"]["Networks"]
        assert set(nets) == {"front", "back"}
        assert nets["front"]["Aliases"] == ["client"]
        assert nets["front"]["Gateway"] == "10.77.0.254"
        assert len(nics_of(vch, "cli-")) == 2
        vch.docker("start", "-a", "cli")
        out = vch.docker("logs", "cli").stdout
        assert "192.0.2.7\text.example" in out
        assert "search corp.example" in out and "options ndots:2" in out
        assert "eth0 eth1 lo" in out
        assert f"eth1 {nets['front']['IPAddress']}/24" in out
        assert f"eth0 {nets['back']['IPAddress']}/24" in out
        # Reached srv over the front network by its fixed address.
        assert out.rstrip().endswith(vch.docker("exec", "srv", "hostname").stdout.strip())
        srv = inspect(vch, "srv")[0]["NetworkSettings"]["Networks"]["front"]
        assert srv["IPAddress"] == "10.77.0.10" and "web" in srv["Aliases"]
        assert {"srv", "web"} <= set(srv["DNSNames"])
        taken = vch.docker("run", "--rm", "--network", "front", "--ip", "10.77.0.10", "busybox", "true",
                           check=False)
        assert taken.returncode != 0 and "already in use" in taken.stderr
        # In use: 409 with dockerd's words; disconnect, then it can go.
        busy = vch.docker("network", "rm", "back", check=False)
        assert busy.returncode != 0 and "has active endpoints" in busy.stderr
        vch.docker("network", "disconnect", "back", "cli")
        assert set(inspect(vch, "cli")[0]["NetworkSettings"]["Networks"]) == {"front"}
        assert len(nics_of(vch, "cli-")) == 1
        vch.docker("network", "rm", "back")
        ps = vch.docker("ps", "-a", "--filter", "network=front", "--format", "{{.Names}}").stdout.split()
        assert sorted(ps) == ["cli", "srv"]
    finally:
        vch.docker("rm", "-f", "srv", "cli", check=False)
        vch.docker("network", "rm", "front", "back", check=False)


def test_what_cannot_be_done_is_refused_by_name(vch):
    for args, want in [
        (["network", "create", "--driver", "overlay", "o"], "overlay"),
        (["network", "create", "--ipv6", "v6"], "--ipv6"),
        (["network", "create", "-o", "com.docker.network.bridge.name=x", "opt"], "com.docker.network.bridge.name"),
        (["network", "create", "bridge"], "predefined bridge network"),
        (["network", "rm", "bridge"], "pre-defined"),
        (["create", "--pull", "never", "--network", "nosuchnet", "busybox", "true"], "nosuchnet not found"),
        (["run", "--rm", "--ip", "172.17.0.50", "busybox", "true"], "user defined networks only"),
        (["run", "--rm", "--network-alias", "x", "busybox", "true"], "network-scoped alias"),
        (["run", "--rm", "--network", "host", "busybox", "true"], "--network host"),
    ]:
        r = vch.docker(*args, check=False)
        assert r.returncode != 0, args
        assert want in r.stderr, (args, r.stderr)


def test_networks_and_addresses_survive_a_vch_restart(vch):
    vch.docker("network", "create", "--subnet", "10.79.0.0/24", "keep")
    try:
        vch.docker("create", "--name", "keeper", "--network", "keep", "busybox", "true")
        ip = inspect(vch, "keeper")[0]["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
        vch.stop()
        vch.start()
        assert net_inspect(vch, "keep")["IPAM"]["Config"][0]["Subnet"] == "10.79.0.0/24"
        vch.docker("create", "--name", "second", "--network", "keep", "busybox", "true")
        ip2 = inspect(vch, "second")[0]["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
        assert ip2 != ip
        members = net_inspect(vch, "keep")["Containers"]
        assert {m["Name"] for m in members.values()} == {"keeper", "second"}
    finally:
        vch.docker("rm", "-f", "keeper", "second", check=False)
        vch.docker("network", "rm", "keep", check=False)


def test_connect_and_disconnect_a_running_container(vch):
    vch.docker("network", "create", "--subnet", "10.81.0.0/24", "live1")
    vch.docker("network", "create", "--subnet", "10.82.0.0/24", "live2")
    try:
        vch.docker("run", "-d", "--name", "peer2", "--network", "live2", "--ip", "10.82.0.20", "busybox",
                   "httpd", "-f", "-p", "80", "-h", "/etc")
        vch.docker("run", "-d", "--name", "roamer", "--network", "live1", "busybox", "sleep", "600")
        unreachable = vch.docker("exec", "roamer", "timeout", "3", "wget", "-q", "-O", "-",
                                 "http://10.82.0.20/hostname", check=False)
        assert unreachable.returncode != 0
        vch.docker("network", "connect", "live2", "roamer")
        assert len(nics_of(vch, "roamer-")) == 2
        addrs = vch.docker("exec", "roamer", "ip", "-o", "-4", "addr").stdout
        ip2 = inspect(vch, "roamer")[0]["NetworkSettings"]["Networks"]["live2"]["IPAddress"]
        assert f"{ip2}/24" in addrs, addrs
        got = vch.docker("exec", "roamer", "wget", "-q", "-O", "-", "http://10.82.0.20/hostname").stdout
        assert got.strip() == vch.docker("exec", "peer2", "hostname").stdout.strip()
        vch.docker("network", "disconnect", "live2", "roamer")
        assert len(nics_of(vch, "roamer-")) == 1
        assert ip2 not in vch.docker("exec", "roamer", "ip", "-o", "-4", "addr").stdout
        assert set(inspect(vch, "roamer")[0]["NetworkSettings"]["Networks"]) == {"live1"}
    finally:
        vch.docker("rm", "-f", "peer2", "roamer", check=False)
        vch.docker("network", "rm", "live1", "live2", check=False)


def test_every_ps_filter_through_the_cli(vch):
    vch.docker("network", "create", "psnet")
    vch.docker("volume", "create", "psvol")
    try:
        vch.docker("run", "-d", "--name", "ps-a", "--label", "tier=web", "--network", "psnet",
                   "-p", "127.0.0.1::80", "--expose", "9000", "busybox", "sleep", "600")
        vch.docker("run", "--name", "ps-b", "-v", "psvol:/data", "busybox", "sh", "-c", "exit 3", check=False)
        vch.docker("create", "--name", "ps-c", "busybox", "true")
        ids = {n: inspect(vch, n)[0]["Id"] for n in ("ps-a", "ps-b", "ps-c")}

        def ps(*filters):
            args = ["ps", "-a", "--format", "{{.Names}}"]
            for f in filters:
                args += ["--filter", f]
            return sorted(n for n in vch.docker(*args).stdout.split() if n.startswith("ps-"))

        assert ps("name=ps-a") == ["ps-a"]
        assert ps(f"id={ids['ps-b'][:12]}") == ["ps-b"]
        assert ps("label=tier=web") == ["ps-a"]
        assert ps("status=exited") == ["ps-b"]
        assert ps("status=created") == ["ps-c"]
        assert ps("exited=3") == ["ps-b"]
        assert ps("ancestor=busybox") == ["ps-a", "ps-b", "ps-c"]
        assert ps("network=psnet") == ["ps-a"]
        assert ps("volume=psvol") == ["ps-b"]
        assert ps("before=ps-c") == ["ps-a", "ps-b"]
        assert ps("since=ps-a") == ["ps-b", "ps-c"]
        assert ps("health=none") == ["ps-a", "ps-b", "ps-c"]
        assert ps("health=healthy") == []
        assert ps("is-task=false") == ["ps-a", "ps-b", "ps-c"]
        assert ps("expose=9000") == ["ps-a"]
        assert ps("expose=80/tcp") == ["ps-a"]
        port = vch.docker("port", "ps-a", "80").stdout.strip().rsplit(":", 1)[1]
        assert ps(f"publish={port}") == ["ps-a"]
        bad = vch.docker("ps", "--filter", "nosuchkey=1", check=False)
        assert bad.returncode != 0 and "invalid filter" in bad.stderr
        # The classic clean-up idiom removes only what the filter names.
        vch.docker("rm", "-f", *vch.docker("ps", "-aq", "--filter", "name=ps-c").stdout.split())
        assert ps() == ["ps-a", "ps-b"]
    finally:
        vch.docker("rm", "-f", "ps-a", "ps-b", "ps-c", check=False)
        vch.docker("network", "rm", "psnet", check=False)
        vch.docker("volume", "rm", "psvol", check=False)


def test_links_hostname_and_domainname_reach_the_guest_files(vch):
    vch.docker("run", "-d", "--name", "linked", "busybox", "sleep", "600")
    try:
        ip = inspect(vch, "linked")[0]["NetworkSettings"]["IPAddress"]
        out = vch.docker("run", "--rm", "--link", "linked:db", "--hostname", "app", "--domainname", "corp.example",
                         "busybox", "sh", "-c", "cat /etc/hostname /etc/hosts; ping -c 1 -W 5 db >/dev/null && echo ok").stdout
        lines = out.splitlines()
        assert lines[0] == "app"
        assert any(line.startswith(ip) and line.split()[1:3] == ["db", "linked"] for line in lines), out
        assert any(line.endswith("app.corp.example app") for line in lines), out
        assert lines[-1] == "ok"
    finally:
        vch.docker("rm", "-f", "linked", check=False)
