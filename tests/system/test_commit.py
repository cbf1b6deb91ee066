"""docker diff and docker commit through the real docker CLI: the changes a container made
to its image (A/C/D, the tether's own files left out), and a commit of them as a new image
with --change, --message and --author, which then runs."""

import json
import re
import urllib.request
from conftest import wait_for




def test_diff_and_commit_of_a_running_container(vch):
    vch.docker("run", "-d", "--name", "src", "busybox", "sh", "-c",
               "echo hi > /greeting; rm /bin/vi; mkdir -p /data/sub; touch /ready; sleep 600")
    assert wait_for(lambda: vch.docker("exec", "src", "test", "-f", "/ready", check=False).returncode == 0)
    diff = set(vch.docker("diff", "src").stdout.splitlines())
    assert {"A /greeting", "D /bin/vi", "C /bin", "A /data", "A /data/sub", "A /ready"} <= diff, diff
    assert not any("/etc/hosts" in d or "/etc/resolv.conf" in d for d in diff), diff

    r = vch.docker("commit", "-c", 'CMD ["cat", "/greeting"]', "-c", "ENV COMMITTED=yes",
                   "-m", "first commit", "-a", "Jane <jane@example.com>", "src", "committed:v1")
    assert r.stdout.strip().startswith("sha256:"), r.stdout
    # Paused during the commit (the default), running after it.
    assert vch.docker("exec", "src", "true", check=False).returncode == 0
    assert vch.docker("run", "--rm", "committed:v1").stdout == "hi\n"
    r = vch.docker("run", "--rm", "committed:v1", "sh", "-c", "echo $COMMITTED; ls /bin/vi 2>&1; ls -d /data/sub")
    assert r.stdout.splitlines()[0] == "yes" and "No such file" in r.stdout and "/data/sub" in r.stdout, r.stdout
    img = json.loads(vch.docker("image", "inspect", "committed:v1").stdout)[0]
    assert img["Author"] == "Jane <jane@example.com>" and img["Comment"] == "first commit", img
    base_layers = json.loads(vch.docker("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    assert img["RootFS"]["Layers"][:-1] == base_layers and len(img["RootFS"]["Layers"]) == len(base_layers) + 1
    hist = vch.docker("history", "--format", "{{.Comment}}", "--no-trunc", "committed:v1").stdout.splitlines()
    assert hist[0] == "first commit", hist

    # A container of the committed image diffs against it, not against busybox.
    vch.docker("run", "-d", "--name", "child", "committed:v1", "sh", "-c", "touch /ready2; sleep 600")
    assert wait_for(lambda: vch.docker("exec", "child", "test", "-f", "/ready2", check=False).returncode == 0)
    assert vch.docker("diff", "child").stdout.splitlines() == ["A /ready2"]
    vch.docker("rm", "-f", "src", "child")
    vch.docker("rmi", "committed:v1")


def test_diff_and_commit_need_a_running_container(vch):
    vch.docker("create", "--name", "idle", "busybox", "true")
    for args in (["diff", "idle"], ["commit", "idle", "never:v1"]):
        r = vch.docker(*args, check=False)
        assert r.returncode != 0 and "needs a running container" in r.stderr, r.stderr
    r = vch.docker("diff", "nosuch", check=False)
    assert r.returncode != 0 and "No such container" in r.stderr
    vch.docker("rm", "idle")


def test_push_mounts_known_layers_uploads_new_ones_and_pulls_back(vch):
    reg = vch.registry
    vch.docker("tag", "busybox", f"{reg}/pushed/bb:v1")
    out = vch.docker("push", f"{reg}/pushed/bb:v1").stdout
    assert f"The push refers to repository [{reg}/pushed/bb]" in out, out
    # busybox came from this registry's `busybox` repository: mounted, not sent.
    assert "Mounted from busybox" in out, out
    assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", out), out
    again = vch.docker("push", f"{reg}/pushed/bb:v1").stdout
    assert "Layer already exists" in again, again

    # A committed layer is rebuilt, compressed and uploaded; the image comes back whole.
    vch.docker("run", "-d", "--name", "pushsrc", "busybox", "sh", "-c",
               "echo pushed-content > /content; touch /ready; sleep 600")
    assert wait_for(lambda: vch.docker("exec", "pushsrc", "test", "-f", "/ready", check=False).returncode == 0)
    vch.docker("commit", "-c", 'CMD ["cat", "/content"]', "pushsrc", f"{reg}/pushed/app:v2")
    vch.docker("rm", "-f", "pushsrc")
    out = vch.docker("push", f"{reg}/pushed/app:v2").stdout
    assert "Pushed" in out and "Mounted from" in out, out
    digest = re.search(r"v2: digest: (sha256:[0-9a-f]{64})", out).group(1)
    digests = vch.docker("image", "inspect", "--format", "{{json .RepoDigests}}", f"{reg}/pushed/app:v2").stdout
    assert f"{reg}/pushed/app@{digest}" in digests, digests
    req = urllib.request.Request(f"http://{reg}/v2/pushed/app/manifests/v2",
                                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json,"
                                                    "application/vnd.oci.image.manifest.v1+json"})
    manifest = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert len(manifest["layers"]) == 2, manifest
    vch.docker("rmi", f"{reg}/pushed/app:v2")
    vch.docker("pull", "-q", f"{reg}/pushed/app:v2")
    assert vch.docker("run", "--rm", f"{reg}/pushed/app:v2").stdout == "pushed-content\n"
    r = vch.docker("push", f"{reg}/pushed/none:v1", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    vch.docker("rmi", f"{reg}/pushed/app:v2", f"{reg}/pushed/bb:v1")
