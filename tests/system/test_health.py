"""Health checks through the real docker CLI: --health-* and an image's HEALTHCHECK run
by the tether in the container VM on their schedule, shown as dockerd shows them (inspect
State.Health, ps status and filter, health_status events); timeouts, --no-healthcheck and
bad settings."""

import json
import subprocess
import time

import conftest
from conftest import busybox_oci



def wait_for(pred):
    # Probes run on a 1 s interval: a few more seconds of slack than the default.
    return conftest.wait_for(pred, timeout=40.0, interval=0.2)


def state(vch, name):
    return json.loads(vch.docker("inspect", "--format", "{{json .State}}", name).stdout)


def health_status(vch, name):
    return (state(vch, name).get("Health") or {}).get("Status")


def test_a_check_goes_unhealthy_then_healthy_with_events(vch):
    since = str(int(time.time()))
    # Fails until /tmp/ok exists (after about 6 s): two failures make it unhealthy.
    vch.docker("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok",
               "--health-interval", "1s", "--health-retries", "2", "busybox",
               "sh", "-c", "sleep 6; touch /tmp/ok; sleep 600")
    s = state(vch, "hc")
    assert s["Health"]["Status"] in ("starting", "unhealthy"), s
    assert wait_for(lambda: state(vch, "hc")["Pid"] > 0), "State.Pid is the process's pid in the VM"
    assert wait_for(lambda: health_status(vch, "hc") == "unhealthy"), state(vch, "hc")
    ps = vch.docker("ps", "--filter", "name=hc", "--format", "{{.Status}}").stdout
    assert ps.strip().endswith("(unhealthy)"), ps
    assert wait_for(lambda: health_status(vch, "hc") == "healthy"), state(vch, "hc")
    h = state(vch, "hc")["Health"]
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert any(r["ExitCode"] == 1 for r in h["Log"]), h
    assert vch.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.split() == ["hc"]
    ev = vch.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--filter", "container=hc", "--format", "{{.Action}}").stdout.splitlines()
    health = [e for e in ev if e.startswith("health_status")]
    assert health[:2] == ["health_status: unhealthy", "health_status: healthy"], ev
    # The last health stays after the exit, without a pid.
    vch.docker("stop", "-t", "1", "hc")
    s = state(vch, "hc")
    assert s["Pid"] == 0 and s["Health"]["Status"] == "healthy", s
    vch.docker("rm", "hc")


def test_a_probe_that_outlives_its_timeout_is_killed_and_fails(vch):
    vch.docker("run", "-d", "--name", "slowcheck", "--health-cmd", "sleep 30",
               "--health-timeout", "500ms", "--health-interval", "1s", "--health-retries", "1",
               "busybox", "sleep", "600")
    assert wait_for(lambda: health_status(vch, "slowcheck") == "unhealthy"), state(vch, "slowcheck")
    last = state(vch, "slowcheck")["Health"]["Log"][-1]
    assert last["ExitCode"] == -1 and last["Output"] == "Health check exceeded timeout (500ms)", last
    # The killed probes do not pile up in the container.
    ps = vch.docker("exec", "slowcheck", "ps", "-o", "args").stdout
    assert ps.count("sleep 30") <= 1, ps
    vch.docker("rm", "-f", "slowcheck")


def test_an_images_healthcheck_runs_and_no_healthcheck_turns_it_off(vch):
    base = vch.base / "hc-image"
    busybox_oci(base / "rootfs", base / "oci", config={
        "Healthcheck": {"Test": ["CMD-SHELL", "echo checked; exit 0"], "Interval": 1_000_000_000}})
    ref = f"{vch.registry}/busybox-hc:latest"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{base}/oci:latest",
                    f"docker://{ref}"], check=True)
    vch.docker("pull", "-q", ref)
    vch.docker("run", "-d", "--name", "imgcheck", ref, "sleep", "600")
    cfg = json.loads(vch.docker("inspect", "--format", "{{json .Config.Healthcheck}}", "imgcheck").stdout)
    assert cfg["Test"] == ["CMD-SHELL", "echo checked; exit 0"], cfg
    assert wait_for(lambda: health_status(vch, "imgcheck") == "healthy"), state(vch, "imgcheck")
    assert state(vch, "imgcheck")["Health"]["Log"][-1]["Output"] == "checked\n"
    vch.docker("run", "-d", "--name", "nocheck", "--no-healthcheck", ref, "sleep", "600")
    assert "Health" not in state(vch, "nocheck")
    ps = vch.docker("ps", "--filter", "name=nocheck", "--format", "{{.Status}}").stdout
    assert "health" not in ps
    vch.docker("rm", "-f", "imgcheck", "nocheck")


def test_bad_health_settings_are_refused_by_name(vch):
    r = vch.docker("run", "-d", "--health-cmd", "true", "--health-interval", "100us", "busybox",
                   "sleep", "1", check=False)
    assert r.returncode != 0 and "Interval in Healthcheck cannot be less than 1ms" in r.stderr, r
