//! Shared fixtures for the image store tests: Debian's `docker-registry` on a free
//! loopback port, the vCenter simulator in-process, OCI layouts written here and pushed
//! with skopeo, and loop/overlay mounts to look at the result.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vcenter_sim::{SimConfig, SimServer, StateOnlyRuntime};
use vch::images::store::{ImageStore, StoreConfig};
use vsphere_client::{Client, TlsTrust};

/// Why these tests cannot run here, if they cannot (see [`cannot_run`]).
pub fn skip_reason(need_mount: bool) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if need_mount && unsafe { libc_geteuid() } != 0 {
        return Some("not root (loop and overlay mounts need it)".into());
    }
    for tool in ["docker-registry", "skopeo"] {
        if which(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (apt-get install -y docker-registry skopeo busybox-static)"
            ));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("busybox-static is not installed".into());
    }
    None
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// The one way a test here declines to run: under `CI=true` it fails with `why` (a green
/// CI that tested nothing would hide it); elsewhere it prints "SKIPPED <test>: <why>" and
/// the caller returns.
pub fn cannot_run(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{test} cannot run under CI=true: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

/// Returns from the test when it cannot run here (through [`cannot_run`]).
#[macro_export]
macro_rules! skip_unless_ready {
    ($mount:expr) => {
        if let Some(why) = images_support::skip_reason($mount) {
            return images_support::cannot_run(&why);
        }
    };
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vch-img-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `docker-registry serve` with filesystem storage in a temp dir.
pub struct RegistryProc {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl RegistryProc {
    pub fn start() -> RegistryProc {
        let dir = tempdir("registry");
        let port = free_port();
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            // allow-sleep: poll interval of a deadline loop.
            std::thread::sleep(Duration::from_millis(50));
        }
        RegistryProc { port, dir, child }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file the registry serves for a blob (to tamper with it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The simulator in-process plus a logged-in client.
pub struct Sim {
    pub server: SimServer,
    pub dir: PathBuf,
    pub client: Client,
}

impl Sim {
    pub async fn start() -> Sim {
        let dir = tempdir("sim");
        let server = SimServer::start(
            SimConfig::new(&dir),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(StateOnlyRuntime),
        )
        .await
        .unwrap();
        let client = Client::connect(
            &server.url,
            TlsTrust::Thumbprint(server.sha256_thumbprint.clone()),
        )
        .await
        .unwrap();
        client
            .login("administrator@vsphere.local", "vmware")
            .await
            .unwrap();
        Sim {
            server,
            dir,
            client,
        }
    }

    /// The local file behind `[datastore1] path`.
    pub fn local(&self, ds_path: &str) -> PathBuf {
        let p = ds_path
            .strip_prefix("[datastore1] ")
            .expect("a datastore1 path");
        self.dir.join("datastores/datastore1").join(p)
    }

    pub async fn store(&self, registry: &RegistryProc) -> ImageStore {
        let mut cfg = StoreConfig::new("vch-test/images");
        cfg.insecure_registries = vec![registry.host()];
        cfg.spool_dir = self.dir.join("spool");
        cfg.download_attempts = 2;
        ImageStore::open(self.client.clone(), cfg).await.unwrap()
    }

    pub async fn done(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

// ---- OCI layouts --------------------------------------------------------------------

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    /// gzip level 1 (zlib-rs emits Huffman-coded blocks even for random data).
    GzipFast,
    Zstd,
}

pub struct Layer {
    pub tar: Vec<u8>,
    pub comp: Comp,
}

/// One image in an OCI layout directory.
pub struct OciImage {
    pub layers: Vec<Layer>,
    pub config: serde_json::Value,
    pub platform: (&'static str, &'static str),
}

pub struct BuiltImage {
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
}

pub fn write_blob(dir: &Path, data: &[u8]) -> String {
    let d = sha(data);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.trim_start_matches("sha256:")), data).unwrap();
    d
}

impl OciImage {
    /// Writes blobs, config and manifest; returns the manifest descriptor JSON too.
    pub fn write(&self, dir: &Path) -> (BuiltImage, serde_json::Value) {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layer_digests = Vec::new();
        for l in &self.layers {
            diff_ids.push(sha(&l.tar));
            let (blob, mt) = match l.comp {
                Comp::None => (l.tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
                Comp::Gzip => {
                    let mut e =
                        // Level 6, like docker's and buildkit's gzip writers (incompressible
                        // data then goes into stored blocks, as it does in real images).
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&l.tar).unwrap();
                    (
                        e.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Comp::GzipFast => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&l.tar).unwrap();
                    (
                        e.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Comp::Zstd => (
                    zstd::encode_all(&l.tar[..], 1).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            };
            let d = write_blob(dir, &blob);
            layer_digests.push(d.clone());
            layer_descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()}));
        }
        let mut config = self.config.clone();
        config["architecture"] = self.platform.1.into();
        config["os"] = self.platform.0.into();
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = write_blob(dir, &config_bytes);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
            "layers": layer_descs,
        });
        let mbytes = serde_json::to_vec(&manifest).unwrap();
        let md = write_blob(dir, &mbytes);
        let desc = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": mbytes.len(),
            "platform": {"os": self.platform.0, "architecture": self.platform.1},
        });
        (
            BuiltImage {
                manifest_digest: md,
                config_digest,
                layer_digests,
                diff_ids,
            },
            desc,
        )
    }
}

/// Writes `index.json` naming `tag` → `desc` (a manifest or an index descriptor).
pub fn write_layout_index(dir: &Path, tag: &str, mut desc: serde_json::Value) {
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
}

/// `skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG` (plain HTTP).
pub fn push(dir: &Path, tag: &str, host: &str, name: &str, extra: &[&str]) {
    let out = Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg("--dest-tls-verify=false")
        .args(extra)
        .arg(format!("oci:{}:{tag}", dir.display()))
        .arg(format!("docker://{host}/{name}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- tar fixtures -------------------------------------------------------------------

pub struct TarW {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarW {
    fn default() -> Self {
        Self::new()
    }
}

impl TarW {
    pub fn new() -> Self {
        TarW {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn hdr(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }
    pub fn dir(&mut self, p: &str) -> &mut Self {
        self.b
            .append(&Self::hdr(p, tar::EntryType::Directory, 0, 0o755), &[][..])
            .unwrap();
        self
    }
    pub fn file(&mut self, p: &str, data: &[u8], mode: u32) -> &mut Self {
        self.b
            .append(
                &Self::hdr(p, tar::EntryType::Regular, data.len() as u64, mode),
                data,
            )
            .unwrap();
        self
    }
    pub fn link(&mut self, kind: tar::EntryType, p: &str, target: &str) -> &mut Self {
        let mut h = Self::hdr(p, kind, 0, 0o777);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }
    pub fn chardev(&mut self, p: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::hdr(p, tar::EntryType::Char, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }
    /// Appends a raw header with an unchecked name (for hostile entries).
    pub fn raw(&mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if !link.is_empty() {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// Deterministic incompressible bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// busybox-static as an image: /bin/busybox, a symlink per applet, /etc/passwd.
pub fn busybox_layer() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").unwrap();
    let mut t = TarW::new();
    for d in [
        "bin/",
        "sbin/",
        "usr/",
        "usr/bin/",
        "usr/sbin/",
        "etc/",
        "tmp/",
        "root/",
    ] {
        t.dir(d);
    }
    t.file("bin/busybox", &bb, 0o755);
    let list = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        t.link(tar::EntryType::Symlink, applet, "/bin/busybox");
    }
    t.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        0o644,
    );
    t.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
    t.finish()
}

pub fn busybox_config() -> serde_json::Value {
    serde_json::json!({
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], "Labels": {"fixture": "busybox"}},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "busybox-static from Debian"}],
    })
}

pub const BIG_LEN: usize = 100 * 1000 * 1000;

/// The layers of the multi-layer fixture: deletions, an opaque directory, hard links,
/// symlinks, a device node, and (optionally) a 100 MB file.
pub fn fancy_layers(with_big: bool) -> Vec<Layer> {
    let mut l1 = TarW::new();
    l1.dir("etc/")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    l1.dir("a/")
        .file("a/file1", b"one\n", 0o644)
        .file("a/file2", b"two\n", 0o644);
    l1.dir("opq/")
        .file("opq/lower1", b"l1\n", 0o644)
        .file("opq/lower2", b"l2\n", 0o644);
    l1.dir("keep/").file("keep/x", b"x\n", 0o600);
    let mut l2 = TarW::new();
    l2.dir("a/").file("a/.wh.file1", b"", 0o644);
    l2.dir("opq/")
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/upper", b"up\n", 0o644);
    l2.dir("hl/").file("hl/one", b"shared inode\n", 0o644);
    l2.link(tar::EntryType::Link, "hl/two", "hl/one");
    l2.link(tar::EntryType::Symlink, "lnk", "/etc/passwd");
    l2.link(tar::EntryType::Symlink, "rel", "a/file2");
    l2.dir("dev/").chardev("dev/null", 1, 3);
    let mut layers = vec![
        Layer {
            tar: l1.finish(),
            comp: Comp::Gzip,
        },
        Layer {
            tar: l2.finish(),
            comp: Comp::Zstd,
        },
    ];
    if with_big {
        let mut l3 = TarW::new();
        l3.dir("big/")
            .file("big/blob", &pseudo_random(BIG_LEN, 42), 0o644);
        // Uncompressed: also exercises plain tar layers (and keeps debug-build tests fast).
        layers.push(Layer {
            tar: l3.finish(),
            comp: Comp::None,
        });
    }
    layers
}

/// Builds and pushes `name:tag` (single platform); returns what was built.
pub fn push_image(
    reg: &RegistryProc,
    name: &str,
    tag: &str,
    image: &OciImage,
    extra: &[&str],
) -> BuiltImage {
    let dir = tempdir("oci");
    let (built, desc) = image.write(&dir);
    write_layout_index(&dir, tag, desc);
    push(&dir, tag, &reg.host(), &format!("{name}:{tag}"), extra);
    let _ = std::fs::remove_dir_all(&dir);
    built
}

// ---- mounts -------------------------------------------------------------------------

/// Loop-mounts layer images read-only and stacks them with overlayfs (lowest first in
/// `layers`), as the tether does in the guest. Unmounts on drop.
pub struct Mounted {
    pub root: PathBuf,
    mounts: Vec<PathBuf>,
    base: PathBuf,
}

pub fn mount_stack(layers: &[PathBuf]) -> Mounted {
    let base = tempdir("mnt");
    let mut mounts = Vec::new();
    let mut lowers = Vec::new();
    for (i, img) in layers.iter().enumerate() {
        let m = base.join(format!("l{i}"));
        std::fs::create_dir_all(&m).unwrap();
        let out = Command::new("mount")
            .args(["-t", "erofs", "-o", "loop,ro"])
            .arg(img)
            .arg(&m)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {}: {}",
            img.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        mounts.push(m.clone());
        lowers.push(m);
    }
    let root = base.join("merged");
    std::fs::create_dir_all(&root).unwrap();
    lowers.reverse();
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if layers.len() == 1 {
        Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(&lowers[0])
            .arg(&root)
            .status()
            .unwrap();
    } else {
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("lowerdir={lowerdir}"))
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "overlay mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    mounts.push(root.clone());
    Mounted { root, mounts, base }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
