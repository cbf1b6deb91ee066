"""The VCH as the router of its networks, seen through the real docker CLI: name
resolution (names, aliases, short ids, forwarding to --dns), published ports, outbound
NAT to the "outside" and --internal networks that have none, and networks that never
reach each other.

The whole VCH (and the loopback registry) runs in a network namespace this test makes:
its "outside" is an interface there (10.250.0.1) with an HTTP server and a tiny DNS
server on it, so no traffic leaves this machine's own namespaces, and the host's
interfaces, routes and packet filters are never touched."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import conftest as sysenv
from conftest import cannot_run

OUTSIDE = "10.250.0.1"
FAKE_ANSWER = "10.250.0.99"


@pytest.fixture(scope="module")
def routed():
    if os.geteuid() != 0:
        cannot_run("network namespaces and container VMs need root")
    for tool in ("ip", "slirp4netns", "nft", "docker-registry", "skopeo"):
        if not shutil.which(tool):
            cannot_run(f"{tool} is not installed (apt-get install iproute2 slirp4netns nftables)")
    ns = f"vchtest{os.getpid()}"
    # nsenter, not `ip netns exec`: only the network namespace changes (the latter also
    # remounts /sys, hiding the cgroup tree the VMs' sandbox needs).
    nsx = ["nsenter", f"--net=/var/run/netns/{ns}"]
    base = Path(tempfile.mkdtemp(prefix="vch-router-"))
    procs = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    # A veth pair with both ends here (no dummy module on every kernel).
                    ["ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext1"],
                    ["ip", "addr", "add", f"{OUTSIDE}/24", "dev", "ext0"],
                    ["ip", "link", "set", "ext0", "up"],
                    ["ip", "link", "set", "ext1", "up"]):
            subprocess.run([*nsx, *cmd], check=True)
        www = base / "www"
        www.mkdir()
        (www / "outside.txt").write_text("hello from outside\n")
        procs.append(subprocess.Popen([*nsx, "python3", "-m", "http.server", "--bind", OUTSIDE, "8000",
                                       "--directory", str(www)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # The fake upstream DNS: a socket bound inside the namespace by a helper process.
        procs.append(subprocess.Popen([*nsx, "python3", "-c", DNS_SERVER_SCRIPT, OUTSIDE],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        port = sysenv.free_port()
        (base / "registry.yml").write_text(
            f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {base}/registry}}}}\n"
            f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: error}}\n")
        procs.append(subprocess.Popen([*nsx, "docker-registry", "serve", str(base / "registry.yml")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(nsx, "127.0.0.1", port)
        wait_port(nsx, OUTSIDE, 8000)
        sysenv.busybox_oci(base / "rootfs", base / "oci")
        subprocess.run([*nsx, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{base}/oci:latest",
                        f"docker://127.0.0.1:{port}/busybox:latest"], check=True)
        v = sysenv.Vch(base, f"127.0.0.1:{port}", prefix=nsx).start()
        v.nsx = nsx
        v.docker("pull", "-q", f"127.0.0.1:{port}/busybox:latest")
        v.docker("tag", f"127.0.0.1:{port}/busybox:latest", "busybox:latest")
        yield v
        v.stop()
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(base, ignore_errors=True)


DNS_SERVER_SCRIPT = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    data, peer = s.recvfrom(512)
    qid = struct.unpack(">H", data[:2])[0]
    end = 12
    while data[end] != 0:
        end += data[end] + 1
    question = data[12:end + 5]
    header = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("%s")
    s.sendto(header + question + answer, peer)
""" % FAKE_ANSWER


def wait_port(nsx, host, port):
    probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=0.5).close()"
    deadline = time.time() + 20
    while time.time() < deadline:
        if subprocess.run([*nsx, "python3", "-c", probe], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)  # allow-sleep: poll interval of a bounded loop
    raise AssertionError(f"{host}:{port} did not come up")


def fetch_in_ns(v, url):
    code = f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).read().decode())"
    return subprocess.run([*v.nsx, "python3", "-c", code], capture_output=True, text=True)


def test_names_aliases_and_ids_resolve_and_the_rest_is_forwarded(routed):
    v = routed
    v.docker("network", "create", "names")
    try:
        v.docker("run", "-d", "--name", "db", "--network", "names", "--network-alias", "database",
                 "busybox", "sleep", "600")
        db = json.loads(v.docker("inspect", "db").stdout)[0]
        ip = db["NetworkSettings"]["Networks"]["names"]["IPAddress"]
        short = db["Id"][:12]
        out = v.docker("run", "--rm", "--network", "names", "--dns", OUTSIDE, "busybox", "sh", "-c",
                       f"cat /etc/resolv.conf; for n in db DB. database {short}; do nslookup $n; done;"
                       "nslookup outside.test").stdout
        gw = json.loads(v.docker("network", "inspect", "names").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
        assert f"nameserver {gw}" in out
        assert out.count(f"Address: {ip}") == 4, out
        assert f"Address: {FAKE_ANSWER}" in out, out
        # A stopped container no longer resolves.
        v.docker("stop", "-t", "0", "db")
        r = v.docker("run", "--rm", "--network", "names", "busybox", "nslookup", "db", check=False)
        assert r.returncode != 0
    finally:
        v.docker("rm", "-f", "db", check=False)
        v.docker("network", "rm", "names", check=False)


def test_published_port_reaches_the_container_and_goes_with_it(routed):
    v = routed
    port = sysenv.free_port()
    v.docker("run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80", "busybox",
             "sh", "-c", "echo published > /tmp/i.html && exec httpd -f -p 80 -h /tmp")
    try:
        assert v.docker("port", "pub").stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            r = fetch_in_ns(v, f"http://127.0.0.1:{port}/i.html")
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.2)  # allow-sleep: poll interval while httpd starts
        assert r.stdout.strip() == "published", r.stderr
        clash = v.docker("run", "-d", "--name", "pub2", "-p", f"127.0.0.1:{port}:80", "busybox", "true",
                         check=False)
        assert clash.returncode != 0 and "port is already allocated" in clash.stderr
        v.docker("stop", "-t", "0", "pub")
        assert fetch_in_ns(v, f"http://127.0.0.1:{port}/i.html").returncode != 0
    finally:
        v.docker("rm", "-f", "pub", "pub2", check=False)


def test_outbound_through_the_vch_unless_internal(routed):
    v = routed
    url = f"http://{OUTSIDE}:8000/outside.txt"
    assert v.docker("run", "--rm", "busybox", "wget", "-q", "-O", "-", url).stdout == "hello from outside\n"
    # On the default bridge --dns servers are the container's own (as dockerd writes
    # them), reached over UDP through the outbound NAT.
    out = v.docker("run", "--rm", "--dns", OUTSIDE, "busybox", "sh", "-c",
                   "cat /etc/resolv.conf; nslookup outside.test").stdout
    assert f"nameserver {OUTSIDE}" in out and f"Address: {FAKE_ANSWER}" in out, out
    v.docker("network", "create", "open")
    v.docker("network", "create", "--internal", "sealed")
    try:
        out = v.docker("run", "--rm", "--network", "open", "busybox", "wget", "-q", "-O", "-", url).stdout
        assert out == "hello from outside\n"
        r = v.docker("run", "--rm", "--network", "sealed", "busybox", "timeout", "5", "wget", "-q", "-O", "-", url,
                     check=False)
        assert r.returncode != 0
        assert json.loads(v.docker("network", "inspect", "sealed").stdout)[0]["Internal"] is True
    finally:
        v.docker("network", "rm", "open", "sealed", check=False)


def test_networks_do_not_reach_each_other(routed):
    v = routed
    v.docker("network", "create", "red")
    v.docker("network", "create", "blue")
    try:
        v.docker("run", "-d", "--name", "redweb", "--network", "red", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
        ip = json.loads(v.docker("inspect", "redweb").stdout)[0]["NetworkSettings"]["Networks"]["red"]["IPAddress"]
        same = v.docker("run", "--rm", "--network", "red", "busybox", "wget", "-q", "-O", "-", f"http://{ip}/hostname")
        assert same.returncode == 0
        other = v.docker("run", "--rm", "--network", "blue", "busybox", "timeout", "5", "wget", "-q", "-O", "-",
                         f"http://{ip}/hostname", check=False)
        assert other.returncode != 0
    finally:
        v.docker("rm", "-f", "redweb", check=False)
        v.docker("network", "rm", "red", "blue", check=False)
