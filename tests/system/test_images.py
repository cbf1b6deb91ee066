"""Images through the docker CLI: a multi-layer image with whiteouts, an opaque
directory, a hard link and a symlink, pulled from the loopback registry and run, proves
the container's filesystem is exactly what the layers say. Also import and prune."""

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import conftest as sysenv


def layer(entries):
    """A gzip layer from (name, kind, data) entries: kind is file|dir|link|hard."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    raw = raw.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def push_multilayer(registry, name):
    base = Path(tempfile.mkdtemp(prefix="multi-"))
    sysenv.busybox_oci(base / "rootfs", base / "oci")
    oci = base / "oci"
    index = json.loads((oci / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((oci / "blobs" / "sha256" / mdigest).read_bytes())
    config = json.loads((oci / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    l1 = layer([("data", "dir", None), ("data/a.txt", "file", b"alpha\n"), ("data/b.txt", "file", b"beta\n"),
                ("data/hard", "hard", "data/a.txt"), ("link", "link", "data/a.txt"),
                ("opq", "dir", None), ("opq/lower", "file", b"hidden\n")])
    l2 = layer([("data/.wh.b.txt", "file", b""), ("opq/.wh..wh..opq", "file", b""),
                ("opq/upper", "file", b"shown\n")])

    def blob(b):
        h = hashlib.sha256(b).hexdigest()
        (oci / "blobs" / "sha256" / h).write_bytes(b)
        return "sha256:" + h

    for raw, gz in (l1, l2):
        manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": blob(gz), "size": len(gz)})
        config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(raw).hexdigest())
    cfg = json.dumps(config).encode()
    manifest["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)}
    man = json.dumps(manifest).encode()
    index["manifests"][0].update({"digest": blob(man), "size": len(man)})
    (oci / "index.json").write_text(json.dumps(index))
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{oci}:latest",
                    f"docker://{registry}/{name}:latest"], check=True)


def test_multilayer_filesystem_is_what_the_layers_say(vch):
    push_multilayer(vch.registry, "multi")
    out = vch.docker("pull", f"{vch.registry}/multi:latest").stdout
    assert "Pull complete" in out or "Downloaded newer image" in out, out
    script = ("ls /data; ls /opq; cat /link; "
              "[ $(stat -c %i /data/a.txt) = $(stat -c %i /data/hard) ] && echo same-inode")
    r = vch.docker("run", "--rm", f"{vch.registry}/multi:latest", "sh", "-c", script)
    assert r.stdout.split("\n") == ["a.txt", "hard", "upper", "alpha", "same-inode", ""]
    inspect = json.loads(vch.docker("image", "inspect", f"{vch.registry}/multi:latest").stdout)[0]
    assert len(inspect["RootFS"]["Layers"]) == 3


def test_import_and_prune(vch, tmp_path):
    root = tmp_path / "root"
    sysenv.busybox_oci(root, tmp_path / "unused")
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as t:
        for p in sorted(root.iterdir()):
            t.add(p, arcname=p.name)
    with open(tarball, "rb") as f:
        r = subprocess.run([sysenv.DOCKER, "-H", f"unix://{vch.sock}", "import", "-", "imported:1"],
                           stdin=f, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("sha256:")
    assert vch.docker("run", "--rm", "imported:1", "/bin/echo", "imported").stdout == "imported\n"
    vch.docker("rmi", "imported:1")
    assert vch.docker("image", "prune", "-f").returncode == 0


def test_pull_errors_answer_before_any_progress(vch):
    """A missing image is a 404 with dockerd's wording, not a 200 stream carrying it."""
    r = vch.docker("pull", f"{vch.registry}/no-such-image:1.0", check=False)
    assert r.returncode != 0
    assert "manifest for" in r.stderr and "not found" in r.stderr, r.stderr
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(vch.sock),
         "-X", "POST", f"http://vch/v1.50/images/create?fromImage={vch.registry}/no-such-image&tag=1.0"],
        capture_output=True, text=True, check=True)
    assert out.stdout == "404"
    # A real pull still streams its progress.
    out = subprocess.run(
        ["curl", "-s", "-w", "\\n%{http_code}", "--unix-socket", str(vch.sock), "-X", "POST",
         f"http://vch/v1.50/images/create?fromImage={vch.registry}/busybox&tag=latest"],
        capture_output=True, text=True, check=True)
    assert out.stdout.endswith("\n200") and '"status"' in out.stdout
