"""Container networking through the real docker CLI: the bridge network is a port group
of the VCH's, each container VM gets a NIC there and an address from 172.17.0.0/16;
--network none leaves only loopback; other modes are refused by name. Checked from the
vSphere side too, and against the host's own interfaces (which must never change)."""

import ipaddress
import json
import time
from pathlib import Path

from pyVmomi import vim

import conftest as sysenv


def host_links():
    """Names of this machine's own network interfaces (the test's namespace)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def inspect(vch, name):
    return json.loads(vch.docker("inspect", name).stdout)[0]


def wait_running(vch, name):
    for _ in range(100):
        if inspect(vch, name)["State"]["Running"]:
            return
        time.sleep(0.1)  # allow-sleep: poll interval of a bounded loop
    raise AssertionError(f"{name} did not start")


def test_inspect_reports_address_gateway_and_mac_the_guest_really_has(vch):
    script = ("cat /sys/class/net/eth0/address; ip -o -4 addr show eth0 | awk '{print $4}'; "
              "ip route | grep default; grep $(hostname) /etc/hosts; ls /sys/class/net | tr '\\n' ' '")
    vch.docker("run", "--name", "netinfo", "--hostname", "web1", "busybox", "sh", "-c", script)
    out = vch.docker("logs", "netinfo").stdout.splitlines()
    c = inspect(vch, "netinfo")
    ns = c["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("172.17.0.0/16")
    assert ns["IPPrefixLen"] == 16 and ns["Gateway"] == "172.17.0.1"
    assert c["HostConfig"]["NetworkMode"] == "bridge"
    br = ns["Networks"]["bridge"]
    assert (br["IPAddress"], br["Gateway"], br["MacAddress"]) == (ip, "172.17.0.1", ns["MacAddress"])
    assert br["NetworkID"] == json.loads(vch.docker("network", "inspect", "bridge").stdout)[0]["Id"]
    # What the guest saw is what inspect says.
    assert out[0] == ns["MacAddress"]
    assert out[1] == f"{ip}/16"
    assert out[2].startswith("default via 172.17.0.1 dev eth0")
    assert out[3] == f"{ip}\tweb1"
    assert out[4].split() == ["eth0", "lo"]
    # vSphere: one vmxnet3 NIC on the VCH's port group, with that MAC.
    si = vch.vsphere()
    vm = sysenv.vm_named(si, "netinfo-")
    nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    assert len(nics) == 1
    assert isinstance(nics[0], vim.vm.device.VirtualVmxnet3)
    assert nics[0].backing.deviceName == "vch"
    assert nics[0].macAddress == ns["MacAddress"]
    assert any(n.name == "vch" for n in vm.network)
    vch.docker("rm", "netinfo")


def test_two_containers_reach_each_other_over_the_bridge(vch):
    before = host_links()
    vch.docker("run", "-d", "--name", "srv", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi from srv")
    wait_running(vch, "srv")
    ip = inspect(vch, "srv")["NetworkSettings"]["IPAddress"]
    ps = vch.docker("ps", "--filter", "name=srv", "--format", "{{.Names}} {{.Networks}}").stdout
    assert ps == "srv bridge\n"
    # Running containers changed nothing on the host: NICs live in the simulator's namespace.
    assert host_links() == before
    r = vch.docker("run", "--rm", "busybox", "sh", "-c",
                   f"for i in $(seq 50); do nc -w 2 {ip} 8080 && exit 0; sleep 0.1; done; exit 1")
    assert r.stdout == "hi from srv\n"
    r = vch.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", ip)
    assert "1 packets received" in r.stdout
    net = json.loads(vch.docker("network", "inspect", "bridge").stdout)[0]
    assert net["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    srv_id = inspect(vch, "srv")["Id"]
    assert net["Containers"][srv_id]["IPv4Address"] == f"{ip}/16"
    vch.docker("rm", "-f", "srv")
    assert host_links() == before


def test_network_none_has_only_loopback(vch):
    r = vch.docker("run", "--name", "isolated", "--network", "none", "busybox", "sh", "-c",
                   "ls /sys/class/net; ip -o link show lo | grep -c UP")
    assert r.stdout.split() == ["lo", "1"]
    c = inspect(vch, "isolated")
    assert c["HostConfig"]["NetworkMode"] == "none"
    assert c["NetworkSettings"]["IPAddress"] == ""
    assert "none" in c["NetworkSettings"]["Networks"]
    si = vch.vsphere()
    vm = sysenv.vm_named(si, "isolated-")
    assert not [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    vch.docker("rm", "isolated")


def test_unsupported_network_modes_are_refused_by_name(vch):
    for args, words in [
        (["--network", "host"], "--network host"),
        (["--network", "container:abc"], "container:abc"),
        (["--network", "mynet"], "network mynet not found"),
        (["--ip", "172.17.0.99"], "user specified IP address"),
    ]:
        # --pull never: a 404 (no such network) would otherwise make the CLI pull.
        r = vch.docker("create", "--pull", "never", *args, "busybox", "true", check=False)
        assert r.returncode != 0, args
        assert words in r.stderr, r.stderr


def test_network_ls_lists_bridge_and_none(vch):
    out = vch.docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout.split("\n")
    assert "bridge bridge local" in out and "none null local" in out
    r = vch.docker("network", "inspect", "nosuchnet", check=False)
    assert r.returncode != 0 and "not found" in r.stderr


def test_addresses_are_not_reused_after_a_vch_restart(vch):
    vch.docker("run", "-d", "--name", "holder", "busybox", "sleep", "300")
    vch.docker("create", "--name", "parked", "busybox", "true")
    held = {inspect(vch, n)["NetworkSettings"]["IPAddress"] for n in ("holder", "parked")}
    vch.stop(kill=True)
    vch.start()
    vch.docker("create", "--name", "newcomer", "busybox", "true")
    new_ip = inspect(vch, "newcomer")["NetworkSettings"]["IPAddress"]
    assert new_ip and new_ip not in held
    assert {inspect(vch, n)["NetworkSettings"]["IPAddress"] for n in ("holder", "parked")} == held
    # Removing a container gives its address back.
    parked_ip = inspect(vch, "parked")["NetworkSettings"]["IPAddress"]
    vch.docker("rm", "parked")
    vch.docker("create", "--name", "reuser", "busybox", "true")
    # (the lowest free address: nothing else of this module's VCH holds one below it)
    assert inspect(vch, "reuser")["NetworkSettings"]["IPAddress"] == parked_ip
    for n in ("holder", "newcomer", "reuser"):
        vch.docker("rm", "-f", n)


def test_bridge_port_group_and_subnet_are_configurable(vch, tmp_path):
    other = sysenv.Vch(tmp_path, vch.registry, ["--name", "vch2", "--bridge-network", "containers-vch2",
                                         "--bridge-subnet", "10.77.0.0/24"]).start()
    try:
        other.docker("pull", "-q", f"{vch.registry}/busybox:latest")
        r = other.docker("run", "--name", "c1", f"{vch.registry}/busybox:latest",
                         "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'; ip route | grep default")
        ip = inspect(other, "c1")["NetworkSettings"]["IPAddress"]
        assert ip == "10.77.0.2"
        lines = r.stdout.splitlines()
        assert lines[0] == "10.77.0.2/24"
        assert lines[1].startswith("default via 10.77.0.1 dev eth0")
        # The port group was created on the cluster's hosts, and the VM's NIC is on it.
        si = other.vsphere()
        vm = sysenv.vm_named(si, "c1-")
        assert [n.name for n in vm.network] == ["containers-vch2"]
        hosts = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.HostSystem], True).view
        for h in hosts:
            pgs = h.configManager.networkSystem.networkInfo.portgroup
            assert "containers-vch2" in [p.spec.name for p in pgs]
        other.docker("rm", "c1")
    finally:
        other.stop()
    bad = sysenv.Vch(tmp_path / "bad", vch.registry, ["--bridge-subnet", "172.17.0.1/16"])
    (tmp_path / "bad").mkdir()
    try:
        bad.start()
        raise AssertionError("a subnet with host bits set was accepted")
    except RuntimeError as e:
        assert "host bits are set" in str(e)


def test_dns_servers_reach_resolv_conf(vch):
    r = vch.docker("run", "--rm", "--dns", "10.1.2.3", "--dns", "10.1.2.4", "busybox", "cat", "/etc/resolv.conf")
    assert r.stdout == "nameserver 10.1.2.3\nnameserver 10.1.2.4\n"
    r = vch.docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert r.stdout.startswith("nameserver ") and "127.0.0." not in r.stdout


def test_bridge_on_a_distributed_port_group(vch, tmp_path):
    other = sysenv.Vch(tmp_path, vch.registry, ["--name", "vch3", "--bridge-network", "DPortGroup0"]).start()
    try:
        other.docker("pull", "-q", f"{vch.registry}/busybox:latest")
        other.docker("run", "-d", "--name", "dv1", f"{vch.registry}/busybox:latest", "sleep", "60")
        wait_running(other, "dv1")
        ip = inspect(other, "dv1")["NetworkSettings"]["IPAddress"]
        r = other.docker("run", "--rm", f"{vch.registry}/busybox:latest", "ping", "-c", "1", "-W", "2", ip)
        assert "1 packets received" in r.stdout
        si = other.vsphere()
        vm = sysenv.vm_named(si, "dv1-")
        [nic] = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert isinstance(nic.backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo)
        [pg] = [n for n in vm.network if n.name == "DPortGroup0"]
        assert nic.backing.port.portgroupKey == pg.key
        other.docker("rm", "-f", "dv1")
        # A user network of this VCH is a distributed port group on the same switch,
        # made and removed through the vSphere API.
        other.docker("network", "create", "dvnet")
        pgname = "vch3-dvnet"  # the VCH's name, the network's
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.dvs.DistributedVirtualPortgroup], True)
        try:
            [dvpg] = [n for n in view.view if n.name == pgname]
            assert dvpg.config.distributedVirtualSwitch == pg.config.distributedVirtualSwitch
        finally:
            view.Destroy()
        other.docker("network", "rm", "dvnet")
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.dvs.DistributedVirtualPortgroup], True)
        try:
            assert pgname not in [n.name for n in view.view]
        finally:
            view.Destroy()
    finally:
        other.stop()
