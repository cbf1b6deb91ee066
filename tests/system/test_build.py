"""docker build (the classic builder, DOCKER_BUILDKIT=0) through the real docker CLI: every
RUN, COPY and ADD runs in a container VM made from the previous step's image and is
committed as a layer; config instructions make config-only images; the cache, multi-stage
builds with --target and COPY --from, .dockerignore, --build-arg, --label, -q and the
errors a Docker user gets."""

import io
import json
import tarfile
from pathlib import Path

import pytest

CLASSIC = {"DOCKER_BUILDKIT": "0"}


def build(vch, ctx: Path, *args, check=True):
    return vch.docker("build", *args, str(ctx), env=CLASSIC, check=check, timeout=300)


def write(ctx: Path, files: dict):
    for name, content in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def test_build_runs_steps_in_vms_and_makes_a_working_image(vch, tmp_path):
    ctx = write(tmp_path, {
        "Dockerfile": (
            "FROM busybox\n"
            "ARG GREETING=hello\n"
            "ENV APP_HOME=/srv/app \\\n    MODE=\"prod mode\"\n"
            "WORKDIR $APP_HOME\n"
            "COPY app/ ./\n"
            "COPY --chown=1000:1000 notes.txt /data/\n"
            "ADD bundle.tar.gz /opt/\n"
            "RUN echo \"$GREETING from RUN\" && echo \"$GREETING\" > built.txt && chmod +x run.sh\n"
            "RUN [\"sh\", \"-c\", \"echo exec form > exec.txt\"]\n"
            "EXPOSE 8080/tcp 53/udp\n"
            "VOLUME /data\n"
            "LABEL org.example.name=\"demo app\"\n"
            "USER 1000\n"
            "STOPSIGNAL SIGINT\n"
            "HEALTHCHECK --interval=30s --retries=2 CMD test -f /srv/app/built.txt\n"
            "ENTRYPOINT [\"./run.sh\"]\n"
            "CMD [\"world\"]\n"
        ),
        "app/run.sh": "#!/bin/sh\necho \"$MODE: $(cat built.txt) $1 $(cat exec.txt) $(cat /opt/inside/file)\"\n",
        "notes.txt": "notes\n",
        "ignored.log": "should not be copied\n",
        ".dockerignore": "*.log\n",
    })
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"from the tarball\n"
        info = tarfile.TarInfo("inside/file")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    (ctx / "bundle.tar.gz").write_bytes(buf.getvalue())

    r = build(vch, ctx, "-t", "demo:1", "--build-arg", "GREETING=hi")
    out = r.stdout
    assert "Step 1/17 : FROM busybox" in out, out
    assert "hi from RUN" in out and " ---> Running in " in out, out
    assert "Successfully tagged demo:1" in out, out

    assert vch.docker("run", "--rm", "demo:1").stdout == "prod mode: hi world exec form from the tarball\n"
    img = json.loads(vch.docker("image", "inspect", "demo:1").stdout)[0]
    cfg = img["Config"]
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "1000" and cfg["StopSignal"] == "SIGINT"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"} and set(cfg["Volumes"]) == {"/data"}
    assert cfg["Labels"] == {"org.example.name": "demo app"}
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /srv/app/built.txt"]
    assert cfg["Healthcheck"]["Interval"] == 30_000_000_000
    assert "APP_HOME=/srv/app" in cfg["Env"] and not any(e.startswith("GREETING") for e in cfg["Env"])
    base = json.loads(vch.docker("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    # COPY, COPY, ADD, RUN, RUN: five layers on busybox's.
    assert img["RootFS"]["Layers"][:len(base)] == base and len(img["RootFS"]["Layers"]) == len(base) + 5

    r = vch.docker("run", "--rm", "--entrypoint", "sh", "demo:1", "-c",
                   "ls /srv/app; stat -c '%u:%g' /data/notes.txt; ls /srv/app/ignored.log 2>&1 || true")
    assert "run.sh" in r.stdout and "built.txt" in r.stdout and "1000:1000" in r.stdout, r.stdout
    assert "No such file" in r.stdout, ".dockerignore'd files stay out: " + r.stdout
    # The step containers are gone.
    assert vch.docker("ps", "-aq").stdout.strip() == ""

    # The same build again is all cache.
    again = build(vch, ctx, "-t", "demo:2", "--build-arg", "GREETING=hi").stdout
    assert again.count("Using cache") == 16 and "Running in" not in again, again
    assert vch.docker("image", "inspect", "-f", "{{.Id}}", "demo:2").stdout == \
        vch.docker("image", "inspect", "-f", "{{.Id}}", "demo:1").stdout
    # A changed file breaks the cache from its COPY on.
    (ctx / "app/run.sh").write_text("#!/bin/sh\necho changed\n")
    changed = build(vch, ctx, "-t", "demo:3", "--build-arg", "GREETING=hi").stdout
    assert changed.count("Using cache") == 3, changed
    assert vch.docker("run", "--rm", "demo:3").stdout == "changed\n"
    # --no-cache runs everything.
    assert "Using cache" not in build(vch, ctx, "--no-cache", "-q").stdout

    # Intermediate images are hidden from `docker images` but shown with -a, and go with
    # the image that needs them.
    assert len(vch.docker("images", "-aq").stdout.split()) > len(vch.docker("images", "-q").stdout.split())
    vch.docker("rmi", "demo:3")
    vch.docker("rm", "-f", *vch.docker("ps", "-aq").stdout.split(), check=False)


def test_multi_stage_target_and_copy_from(vch, tmp_path):
    ctx = write(tmp_path, {
        "Dockerfile": (
            "FROM busybox AS builder\n"
            "RUN mkdir -p /out/bin && echo 'echo from builder' > /out/bin/tool && chmod +x /out/bin/tool\n"
            "FROM busybox AS tester\n"
            "RUN echo testing\n"
            "FROM scratch AS final\n"
            "COPY --from=builder /out/bin/tool /tool\n"
            "COPY --from=0 /bin/busybox /bin/sh\n"
            "CMD [\"/bin/sh\", \"/tool\"]\n"
        ),
    })
    build(vch, ctx, "-t", "ms:final")
    assert vch.docker("run", "--rm", "ms:final").stdout == "from builder\n"
    layers = json.loads(vch.docker("image", "inspect", "ms:final").stdout)[0]["RootFS"]["Layers"]
    assert len(layers) == 2, "FROM scratch: only the two COPY layers"

    r = build(vch, ctx, "--target", "tester", "-t", "ms:tester")
    assert "testing" in r.stdout and "Step 6/" not in r.stdout, r.stdout
    r = build(vch, ctx, "--target", "nope", check=False)
    assert r.returncode != 0 and "failed to reach build target nope" in r.stderr + r.stdout


def test_build_errors_a_user_gets(vch, tmp_path):
    ctx = write(tmp_path / "fail", {"Dockerfile": "FROM busybox\nRUN echo before && exit 3\n"})
    r = build(vch, ctx, check=False)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "The command '/bin/sh -c echo before && exit 3' returned a non-zero code: 3" in r.stderr + r.stdout
    assert "before" in r.stdout
    assert vch.docker("ps", "-aq").stdout.strip() == "", "the failed step's container is removed"

    bad = write(tmp_path / "bad", {"Dockerfile": "FROM busybox\nBOGUS x\n"})
    r = build(vch, bad, check=False)
    assert r.returncode != 0 and "unknown instruction" in r.stderr.lower(), r.stderr

    missing = write(tmp_path / "missing", {"Dockerfile": "FROM busybox\nCOPY nothere /x\n"})
    r = build(vch, missing, check=False)
    assert r.returncode != 0 and "file not found in build context" in r.stderr + r.stdout

    url = write(tmp_path / "url", {"Dockerfile": "FROM busybox\nADD http://example.invalid/f /f\n"})
    r = build(vch, url, check=False)
    assert r.returncode != 0 and "ADD from a URL" in r.stderr + r.stdout

    r = build(vch, ctx, "--squash", check=False)
    assert r.returncode != 0

    r = vch.docker("build", "--cpu-shares", "512", str(ctx), env=CLASSIC, check=False)
    assert r.returncode != 0 and "cpushares" in r.stderr, r.stderr


def test_memory_limit_and_a_dockerfile_without_context(vch, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo limited > /m\n"})
    r = build(vch, ctx, "-m", "256m", "-t", "limited")
    assert "limited" in r.stdout or "Successfully" in r.stdout, r.stdout
    # `docker build - < Dockerfile`: the body is the Dockerfile, there is no context.
    r = vch.docker("build", "-t", "stdin-built", "-", env=CLASSIC,
                   input_file=str(ctx / "Dockerfile"))
    assert "Successfully tagged stdin-built:latest" in r.stdout, r.stdout
    assert vch.docker("run", "--rm", "stdin-built", "cat", "/m").stdout == "limited\n"


def test_onbuild_quiet_labels_and_unused_args(vch, tmp_path):
    base = write(tmp_path / "base", {
        "Dockerfile": "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered > /trig\n",
    })
    build(vch, base, "-t", "onbuild-base")
    child = write(tmp_path / "child", {"Dockerfile": "FROM onbuild-base\nCMD cat /marker /trig\n",
                                        "marker": "marked\n"})
    r = build(vch, child, "-t", "onbuild-child", "--label", "team=core", "--build-arg", "UNUSED=1")
    assert "# Executing 2 build triggers" in r.stdout, r.stdout
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.stdout
    assert vch.docker("run", "--rm", "onbuild-child").stdout == "marked\ntriggered\n"
    img = json.loads(vch.docker("image", "inspect", "onbuild-child").stdout)[0]
    assert img["Config"]["Labels"] == {"team": "core"} and not img["Config"].get("OnBuild")

    q = build(vch, child, "-q")
    assert q.stdout.strip().startswith("sha256:") and len(q.stdout.strip().splitlines()) == 1, q.stdout


def test_plain_cli_falls_back_and_docker_py_builds(vch, tmp_path):
    """Without DOCKER_BUILDKIT the CLI reads Builder-Version 1 from /_ping and uses the
    classic API; docker-py's images.build speaks it directly."""
    import os
    import subprocess
    import docker
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo plain > /p\nCMD cat /p\n"})
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_BUILDKIT"}
    r = subprocess.run(["docker", "-H", f"unix://{vch.sock}", "build", "-t", "plain", str(ctx)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "Successfully tagged plain:latest" in r.stdout, r.stderr
    client = docker.DockerClient(base_url=f"unix://{vch.sock}")
    img, logs = client.images.build(path=str(ctx), tag="pybuilt")
    assert any("aux" in line for line in logs)
    assert client.containers.run("pybuilt", remove=True) == b"plain\n"
    with pytest.raises(docker.errors.BuildError) as e:
        write(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 7\n"})
        client.images.build(path=str(tmp_path), nocache=True)
    assert "returned a non-zero code: 7" in str(e.value)
