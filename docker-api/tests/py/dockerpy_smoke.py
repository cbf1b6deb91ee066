"""docker-py against the front end (driven by tests/dockerpy.rs with the fake backend).

Run: DOCKER_HOST=unix:///path/docker.sock python3 dockerpy_smoke.py
"""
import os

import docker

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=30)

assert c.ping() is True
assert c.api.api_version == "1.50", c.api.api_version
v = c.version()
assert v["ApiVersion"] == "1.50" and v["MinAPIVersion"] == "1.24", v
assert c.info()["Name"] == "vch-test"

# run = create, start, wait, logs
out = c.containers.run("busybox", ["echo", "from", "py"])
assert out == b"from py\n", out
try:
    c.containers.run("busybox", ["sh", "-c", "exit 2"])
    raise AssertionError("expected ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 2, e

try:
    c.containers.get("nope")
    raise AssertionError("expected NotFound")
except docker.errors.NotFound as e:
    assert "No such container: nope" in str(e), e

c.containers.create("busybox", name="pydup")
try:
    c.containers.create("busybox", name="pydup")
    raise AssertionError("expected a conflict")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "already in use" in str(e), e

# exec over a hijacked connection, demultiplexed by docker-py
ct = c.containers.run("busybox", ["sleep"], detach=True)
r = ct.exec_run(["echo", "exec"])
assert (r.exit_code, r.output) == (0, b"exec\n"), r
r = ct.exec_run(["warn", "err"], demux=True)
assert r.output == (None, b"err\n"), r

# attach with stdin over the raw socket
cat = c.api.create_container("busybox", ["cat"], stdin_open=True)
sock = c.api.attach_socket(cat["Id"], params={"stdin": 1, "stdout": 1, "stream": 1})
c.api.start(cat["Id"])
raw = sock._sock
raw.sendall(b"py stdin\n")
raw.shutdown(1)  # half-close: no more stdin
data = b""
while True:
    chunk = raw.recv(4096)
    if not chunk:
        break
    data += chunk
assert data == b"\x01\x00\x00\x00\x00\x00\x00\x09py stdin\n", data
assert c.api.wait(cat["Id"])["StatusCode"] == 0

# pull progress, decoded line by line
lines = list(c.api.pull("alpine", tag="3.20", stream=True, decode=True))
assert lines[0]["status"] == "Pulling from library/alpine", lines[0]
assert lines[-1]["status"] == "Status: Downloaded newer image for alpine:3.20", lines[-1]

done = c.containers.run("busybox", ["echo", "logged"], detach=True)
assert done.wait()["StatusCode"] == 0
assert done.logs() == b"logged\n"

try:
    c.swarm.init()
    raise AssertionError("expected 501")
except docker.errors.APIError as e:
    assert e.status_code == 501 and "swarm is not supported by this VCH" in str(e), e

print("docker-py ok")
