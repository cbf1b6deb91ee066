#![allow(dead_code)] // each test binary uses part of the harness
//! Shared harness: a simulator with the process sandbox, the tether's boot disk and a
//! busybox layer on its datastore, and container VMs built through vim25 calls.

use std::sync::Arc;
use std::time::{Duration, Instant};
use vcenter_sim::{SandboxRuntime, SimConfig, SimServer};
use vsphere_client::spec::*;
use vsphere_client::{Client, MoRef, TlsTrust, Value};

pub struct Env {
    pub runtime: Arc<SandboxRuntime>,
    pub server: SimServer,
    pub client: Client,
    pub folder: MoRef,
    pub pool: MoRef,
    pub dir: std::path::PathBuf,
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

/// Whether a container VM test cannot run here (reported through [`cannot_run`]).
pub fn skip() -> bool {
    let why = if let Err(why) = SandboxRuntime::supported() {
        why
    } else if std::process::Command::new("mkfs.ext4")
        .arg("-V")
        .output()
        .is_err()
    {
        "mkfs.ext4 (e2fsprogs) is not installed".to_string()
    } else if !std::path::Path::new("/bin/busybox").exists() {
        "/bin/busybox (busybox-static) is not installed".to_string()
    } else {
        return false;
    };
    cannot_run(&why);
    true
}

/// A busybox root filesystem, as an image layer would hold it.
fn busybox_stage(at: &std::path::Path) {
    let bin = at.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(at.join(d)).unwrap();
    }
    std::fs::write(
        at.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(at.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(std::path::Path::new(env!("CARGO_BIN_EXE_tether"))).await
    }

    /// `start`, with the boot disk built from the tether binary `tether`.
    pub async fn start_with(tether: &std::path::Path) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "tether-e2e-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let runtime = Arc::new(SandboxRuntime::new(dir.join("run")));
        let server = SimServer::start(
            SimConfig::new(&dir),
            "127.0.0.1:0".parse().unwrap(),
            runtime.clone(),
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
        let (_, dc) = client.datacenter(None).await.unwrap();
        // The template boot disk and a busybox layer disk, uploaded to the datastore.
        let build = dir.join("build");
        let boot = appliance_image::build_boot_disk(tether, &build, "vch-boot").unwrap();
        let stage = build.join("busybox-root");
        busybox_stage(&stage);
        let (layer_desc, layer_extent) =
            appliance_image::build_ext4_disk(&stage, &build, "busybox", 1 << 20).unwrap();
        client
            .make_directory(&dc, "[datastore1] vch/layers", true)
            .await
            .unwrap();
        for (local, remote) in [
            (&boot.descriptor, "vch/vch-boot.vmdk"),
            (&boot.extent, "vch/vch-boot-flat.vmdk"),
            (&layer_desc, "vch/layers/busybox.vmdk"),
            (&layer_extent, "vch/layers/busybox-flat.vmdk"),
        ] {
            client
                .upload_bytes("DC0", "datastore1", remote, std::fs::read(local).unwrap())
                .await
                .unwrap();
        }
        let folder = client.must_find("folder", "DC0/vm").await.unwrap();
        let pool = client
            .must_find("pool", "DC0/host/Cluster0/Resources")
            .await
            .unwrap();
        Env {
            runtime,
            server,
            client,
            folder,
            pool,
            dir,
        }
    }

    /// A container VM: boot disk, busybox layer, fresh scratch disk, log serial port.
    pub async fn container(&self, name: &str, cmd: &[&str], memory_mb: i64) -> MoRef {
        self.container_with(name, cmd, memory_mb, serde_json::json!({}), vec![], None)
            .await
    }

    /// `container`, with more spec keys (merged over the defaults), more devices and,
    /// with `control`, serial port 1 backed by that `tcp://` URI (the control channel).
    pub async fn container_with(
        &self,
        name: &str,
        cmd: &[&str],
        memory_mb: i64,
        extra_spec: serde_json::Value,
        extra_devices: Vec<DeviceChange>,
        control: Option<String>,
    ) -> MoRef {
        let mut spec = serde_json::json!({
            "id": format!("{name}0123456789abcdef"),
            "hostname": name,
            "cmd": cmd,
            "layers": ["scsi0:1"],
            "scratch": "scsi0:2",
        });
        if let (Some(o), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
        }
        let disk = |key, unit, file: &str, mode: &str, kb| Device::Disk {
            key,
            controller_key: -100,
            unit: Some(unit),
            capacity_kb: kb,
            file: file.to_string(),
            mode: mode.to_string(),
            thin: true,
        };
        let config = VmConfigSpec {
            name: Some(name.into()),
            guest_id: Some("otherLinux64Guest".into()),
            vm_path_name: Some("[datastore1]".into()),
            num_cpus: Some(1),
            memory_mb: Some(memory_mb),
            extra_config: vec![("guestinfo.vch.spec".into(), spec.to_string())],
            devices: vec![
                DeviceChange::add(Device::PvScsi { key: -100, bus: 0 }),
                DeviceChange::add(disk(
                    -1,
                    0,
                    "[datastore1] vch/vch-boot.vmdk",
                    "independent_nonpersistent",
                    0,
                )),
                DeviceChange::add(disk(
                    -2,
                    1,
                    "[datastore1] vch/layers/busybox.vmdk",
                    "independent_nonpersistent",
                    0,
                )),
                DeviceChange::create(disk(-3, 2, "", "persistent", 64 * 1024)),
                DeviceChange::add(Device::Serial {
                    key: -4,
                    backing: SerialBacking::File {
                        path: format!("[datastore1] {name}/container.log"),
                    },
                }),
            ]
            .into_iter()
            .chain(extra_devices)
            .collect(),
            ..Default::default()
        };
        let mut config = config;
        if let Some(uri) = control {
            config.devices.push(DeviceChange::add(Device::Serial {
                key: -5,
                backing: SerialBacking::Uri { uri },
            }));
        }
        self.client
            .create_vm(&self.folder, &self.pool, None, &config)
            .await
            .unwrap()
    }

    pub async fn wait_off(&self, vm: &MoRef) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self
                .client
                .property(vm, "runtime.powerState")
                .await
                .unwrap()
                .unwrap();
            if s.as_text() == Some("poweredOff") {
                return;
            }
            assert!(Instant::now() < deadline, "VM did not power off");
            // allow-sleep: poll interval of a deadline loop.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (stdout text, exit record) from the VM's log on the datastore.
    pub async fn log(&self, name: &str) -> (String, serde_json::Value) {
        let raw = self
            .client
            .download_bytes("DC0", "datastore1", &format!("{name}/container.log"), None)
            .await
            .unwrap();
        let mut out = String::new();
        let mut exit = serde_json::Value::Null;
        for line in String::from_utf8_lossy(&raw).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"] == "exit" {
                exit = v;
            } else {
                out.push_str(v["log"].as_str().unwrap());
            }
        }
        (out, exit)
    }

    pub async fn run(&self, name: &str, cmd: &[&str], memory_mb: i64) -> (String, i64) {
        let vm = self.container(name, cmd, memory_mb).await;
        self.client.power_on(&vm).await.unwrap();
        self.wait_off(&vm).await;
        let (out, exit) = self.log(name).await;
        (out, exit["exit_code"].as_i64().unwrap_or(-1))
    }

    /// A running template: a container VM whose tether idles without a spec, after
    /// formatting the scratch disk (scsi0:2) its clones inherit as delta disks.
    pub async fn template(&self, memory_mb: i64) -> MoRef {
        let template = self.container("template", &["true"], memory_mb).await;
        self.client
            .reconfigure_vm(
                &template,
                &VmConfigSpec {
                    extra_config: vec![
                        ("guestinfo.vch.spec".into(), String::new()),
                        ("guestinfo.vch.template.scratch".into(), "scsi0:2".into()),
                    ],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.client.power_on(&template).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let extra = self
                .client
                .property(&template, "config.extraConfig")
                .await
                .unwrap();
            let ready = matches!(&extra, Some(Value::Array { items, .. }) if items
                .iter()
                .filter_map(Value::as_obj)
                .any(|o| o.text("key") == Some("guestinfo.vch.state")
                    && o.get("value").and_then(Value::as_text) == Some("template-ready")));
            if ready {
                return template;
            }
            assert!(Instant::now() < deadline, "template did not become ready");
            // allow-sleep: poll interval of a deadline loop.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Instant clone of `template` running `cmd`, logging to `[datastore1] <name>/container.log`.
    pub async fn instant_clone(&self, template: &MoRef, name: &str, cmd: &[&str]) -> MoRef {
        let serial_key = match self
            .client
            .property(template, "config.hardware.device")
            .await
            .unwrap()
            .unwrap()
        {
            Value::Array { items, .. } => items
                .iter()
                .filter_map(Value::as_obj)
                .find(|d| d.ty == "VirtualSerialPort")
                .and_then(|d| d.i64("key"))
                .unwrap(),
            _ => panic!("devices"),
        };
        let spec = serde_json::json!({"id": format!("{name}-0123456789"), "hostname": name, "cmd": cmd, "layers": ["scsi0:1"], "scratch": "scsi0:2"});
        self.client
            .instant_clone(
                template,
                &InstantCloneSpec {
                    name: name.to_string(),
                    location: Placement {
                        folder: Some(self.folder.clone()),
                        pool: Some(self.pool.clone()),
                        devices: vec![DeviceChange {
                            op: DeviceOp::Edit,
                            file_op: None,
                            device: Device::Serial {
                                key: serial_key,
                                backing: SerialBacking::File {
                                    path: format!("[datastore1] {name}/container.log"),
                                },
                            },
                        }],
                        ..Default::default()
                    },
                    config: vec![("guestinfo.vch.spec".into(), spec.to_string())],
                    bios_uuid: None,
                },
            )
            .await
            .unwrap()
    }

    pub async fn done(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Loop devices backed by files of this test's simulator (tests run in parallel, so
/// only our own devices count).
pub fn attached_loops(dir: &std::path::Path) -> usize {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
                .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
                .filter(|b| b.starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}
