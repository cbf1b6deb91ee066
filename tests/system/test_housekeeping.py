"""Housekeeping through the real docker CLI: container prune with its filters, system df,
and what ps and info report (durations, the cluster's capacity)."""

import json
import re


def names(vch, *args):
    out = vch.docker("ps", "-a", "--format", "{{.Names}}", *args).stdout.split()
    return sorted(out)


def test_container_prune_removes_stopped_containers_matching_its_filters(vch):
    vch.docker("run", "-d", "--name", "keepme", "busybox", "sleep", "600")
    vch.docker("create", "--name", "fresh", "--label", "tier=web", "busybox", "true")
    vch.docker("run", "--name", "finished", "busybox", "true")
    # Nothing is older than an hour; an unreadable time is refused by name.
    r = vch.docker("container", "prune", "-f", "--filter", "until=1h")
    assert "Total reclaimed space" in r.stdout
    assert {"keepme", "fresh", "finished"} <= set(names(vch))
    r = vch.docker("container", "prune", "-f", "--filter", "until=someday", check=False)
    assert r.returncode != 0 and "until" in r.stderr
    r = vch.docker("container", "prune", "-f", "--filter", "label=tier=web")
    assert "fresh" not in names(vch) and "finished" in names(vch)
    r = vch.docker("container", "prune", "-f")
    ids = [line for line in r.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{64}", line)]
    assert len(ids) == 1
    assert "finished" not in names(vch) and "keepme" in names(vch)
    vch.docker("rm", "-f", "keepme")


def test_system_df_counts_images_containers_and_volumes(vch):
    vch.docker("run", "-d", "--name", "dfuser", "-v", "dfvol:/d", "busybox", "sleep", "600")
    rows = [json.loads(line) for line in
            vch.docker("system", "df", "--format", "{{json .}}").stdout.splitlines()]
    by_type = {r["Type"]: r for r in rows}
    assert by_type["Images"]["TotalCount"] == "1" and by_type["Images"]["Active"] == "1"
    assert by_type["Containers"]["Active"] == "1"
    assert by_type["Local Volumes"]["Active"] == "1"
    verbose = vch.docker("system", "df", "-v").stdout
    assert "busybox" in verbose and "dfvol" in verbose and "dfuser" in verbose
    vch.docker("rm", "-f", "dfuser")
    vch.docker("volume", "rm", "dfvol")


def test_ps_says_how_long_and_info_reports_the_clusters_capacity(vch):
    vch.docker("run", "-d", "--name", "uptime", "busybox", "sleep", "600")
    status = vch.docker("ps", "--filter", "name=uptime", "--format", "{{.Status}}").stdout
    assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)\n", status), status
    vch.docker("run", "--name", "quick", "busybox", "true")
    status = vch.docker("ps", "-a", "--filter", "name=quick", "--format", "{{.Status}}").stdout
    assert re.fullmatch(r"Exited \(0\) (Less than a second|\d+ seconds?) ago\n", status), status
    info = json.loads(vch.docker("info", "--format", "{{json .}}").stdout)
    assert info["NCPU"] > 0 and info["MemTotal"] > 0
    assert info["ContainersRunning"] == 1 and info["ContainersStopped"] == 1
    vch.docker("rm", "-f", "uptime", "quick")


def test_unnamed_containers_get_docker_style_names(vch):
    cid = vch.docker("create", "busybox", "true").stdout.strip()
    name = vch.docker("inspect", "--format", "{{.Name}}", cid).stdout.strip()
    assert re.fullmatch(r"/[a-z]+_[a-z]+\d?", name), name
    vch.docker("rm", cid)


def test_log_drivers_are_honoured_or_refused_by_name(vch):
    # `none`: output still reaches an attached client, but `docker logs` cannot read it.
    r = vch.docker("run", "--name", "nolog", "--log-driver", "none", "busybox", "echo", "hi")
    assert r.stdout == "hi\n"
    cfg = json.loads(vch.docker("inspect", "--format", "{{json .HostConfig.LogConfig}}", "nolog").stdout)
    assert cfg["Type"] == "none"
    r = vch.docker("logs", "nolog", check=False)
    assert r.returncode != 0 and "configured logging driver does not support reading" in r.stderr
    vch.docker("run", "--name", "deflog", "busybox", "echo", "kept")
    cfg = json.loads(vch.docker("inspect", "--format", "{{json .HostConfig.LogConfig}}", "deflog").stdout)
    assert cfg["Type"] == "json-file"
    assert vch.docker("logs", "deflog").stdout == "kept\n"
    r = vch.docker("create", "--log-driver", "syslog", "busybox", "true", check=False)
    assert r.returncode != 0 and "syslog" in r.stderr
    r = vch.docker("create", "--log-opt", "max-size=1m", "busybox", "true", check=False)
    assert r.returncode != 0 and "max-size" in r.stderr
    vch.docker("rm", "nolog", "deflog")


def test_login_checks_credentials_with_the_registry(vch, tmp_path):
    """`docker login` against a loopback registry with htpasswd auth: the right password
    is accepted, a wrong one is a 401 with dockerd's wording."""
    import os
    import warnings
    import subprocess

    import conftest as sysenv

    with warnings.catch_warnings():
        # Deprecated in 3.11, but libxcrypt's bcrypt is what the registry's htpasswd needs.
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    port = sysenv.free_port()
    (tmp_path / "htpasswd").write_text(
        "alice:" + crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)) + "\n")
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path}/data}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: error}}\n"
        f"auth: {{htpasswd: {{realm: vch-test, path: {tmp_path}/htpasswd}}}}\n")
    reg = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "registry.yml")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sysenv.wait_for_port(port)
        env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "cli")}

        def login(password):
            return subprocess.run(
                [sysenv.DOCKER, "-H", f"unix://{vch.sock}", "login", "-u", "alice", "--password-stdin",
                 f"127.0.0.1:{port}"], input=password, capture_output=True, text=True, env=env,
                timeout=60)

        ok = login("s3cret")
        assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.stderr
        bad = login("wrong")
        assert bad.returncode != 0 and "incorrect username or password" in bad.stderr, bad.stderr
    finally:
        reg.terminate()
        reg.wait(timeout=10)
