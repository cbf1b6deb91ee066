"""Compose 1.29 (Debian's docker-compose) against the VCH: a two-service project with a
project network, service names resolved by the VCH's DNS, a legacy link, a named volume and
depends_on, from `up --abort-on-container-exit` (and `up -d`, `exec`, `run`) through
`down -v`, which must leave nothing behind."""

import json
import os
import shutil
import subprocess

from conftest import cannot_run

PROJECT = """
version: "3.7"
services:
  web:
    image: busybox
    # httpd has no TERM handler: without an init, a stop waits its 10 s (as with dockerd).
    init: true
    command: ["sh", "-c", "echo served-from-volume > /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["data:/www"]
  client:
    image: busybox
    depends_on: [web]
    links: ["web:webhost"]
    command: ["sh", "-c", "for i in $$(seq 50); do wget -q -O - http://web/ && exit 0; sleep 0.2; done; exit 1"]
volumes:
  data: {}
"""


def compose(vch, workdir, *args, check=True):
    env = dict(os.environ, DOCKER_HOST=f"unix://{vch.sock}", COMPOSE_INTERACTIVE_NO_CLI="1")
    r = subprocess.run(["docker-compose", "-p", "proj", *args], cwd=workdir, env=env,
                       capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def test_two_service_project_up_to_down(vch, tmp_path):
    if not shutil.which("docker-compose"):
        cannot_run("docker-compose is not installed (apt-get install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(PROJECT)
    try:
        up = compose(vch, tmp_path, "up", "--abort-on-container-exit", "--exit-code-from", "client")
        assert "served-from-volume" in up.stdout, up.stdout
        nets = json.loads(vch.docker("network", "inspect", "proj_default").stdout)[0]
        assert nets["Labels"].get("com.docker.compose.project") == "proj"
        ps = compose(vch, tmp_path, "ps")
        assert "proj_web_1" in ps.stdout and "proj_client_1" in ps.stdout
        logs = compose(vch, tmp_path, "logs", "client")
        assert "served-from-volume" in logs.stdout
        assert vch.docker("volume", "inspect", "proj_data").returncode == 0
    finally:
        compose(vch, tmp_path, "down", "-v", check=False)
    assert vch.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=proj").stdout.strip() == ""
    assert vch.docker("network", "inspect", "proj_default", check=False).returncode != 0
    assert vch.docker("volume", "inspect", "proj_data", check=False).returncode != 0


def test_detached_project_exec_run_and_down(vch, tmp_path):
    if not shutil.which("docker-compose"):
        cannot_run("docker-compose is not installed (apt-get install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(PROJECT)
    try:
        compose(vch, tmp_path, "up", "-d", "web")
        served = compose(vch, tmp_path, "exec", "-T", "web", "sh", "-c",
                         "for i in $(seq 50); do [ -s /www/index.html ] && break; sleep 0.1; done; cat /www/index.html")
        assert served.stdout.strip() == "served-from-volume"
        # Through the legacy link's alias (an /etc/hosts entry).
        ran = compose(vch, tmp_path, "run", "--rm", "client", "wget", "-q", "-O", "-", "http://webhost/")
        assert "served-from-volume" in ran.stdout
        ps = compose(vch, tmp_path, "ps", "-q")
        assert len(ps.stdout.split()) == 1, ps.stdout
    finally:
        compose(vch, tmp_path, "down", "-v", check=False)
    assert vch.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=proj").stdout.strip() == ""
    assert vch.docker("network", "inspect", "proj_default", check=False).returncode != 0
