//! The client against vcenter-sim started in-process, over real HTTPS.

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use vcenter_sim::{SimConfig, SimServer, StateOnlyRuntime};
use vsphere_client::spec::*;
use vsphere_client::types::UpdateKind;
use vsphere_client::{Client, Error, FilterSpec, MoRef, TlsTrust, Value};

struct Env {
    server: SimServer,
    dir: std::path::PathBuf,
}

async fn sim_with(timeout: Option<Duration>) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "vsc-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut cfg = SimConfig::new(&dir);
    if let Some(t) = timeout {
        cfg.session_timeout = t;
    }
    let server = SimServer::start(
        cfg,
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(StateOnlyRuntime),
    )
    .await
    .unwrap();
    Env { server, dir }
}

impl Env {
    async fn client(&self) -> Client {
        let c = Client::connect(
            &self.server.url,
            TlsTrust::Thumbprint(self.server.sha256_thumbprint.clone()),
        )
        .await
        .unwrap();
        c.login("administrator@vsphere.local", "vmware")
            .await
            .unwrap();
        c
    }
    async fn done(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

#[tokio::test]
async fn wrong_thumbprint_is_refused_before_login() {
    let env = sim_with(None).await;
    let wrong = "AA:".repeat(31) + "AA";
    let err = Client::connect(&env.server.url, TlsTrust::Thumbprint(wrong))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(err.to_string().contains("thumbprint"), "{err}");
    // The SHA-1 form works too, and a CA bundle with the simulator's certificate.
    Client::connect(
        &env.server.url,
        TlsTrust::Thumbprint(env.server.sha1_thumbprint.clone()),
    )
    .await
    .unwrap();
    env.done().await;
}

#[tokio::test]
async fn bad_password_is_invalid_login_fault() {
    let env = sim_with(None).await;
    let c = Client::connect(&env.server.url, TlsTrust::Insecure)
        .await
        .unwrap();
    let err = c
        .login("administrator@vsphere.local", "nope")
        .await
        .unwrap_err();
    assert_eq!(err.fault_type(), Some("InvalidLogin"));
    env.done().await;
}

#[tokio::test]
async fn expired_session_is_reestablished_transparently() {
    let env = sim_with(Some(Duration::from_millis(300))).await;
    let c = env.client().await;
    // allow-sleep: idling past the session timeout is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The session expired on the server; the client logs in again and the call succeeds.
    let (name, _) = c.datacenter(None).await.unwrap();
    assert_eq!(name, "DC0");
    env.done().await;
}

#[tokio::test]
async fn finder_defaults_and_paths() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (_, dc) = c.datacenter(None).await.unwrap();
    let (ds_name, _) = c.datastore(&dc, None).await.unwrap();
    assert_eq!(ds_name, "datastore1");
    let (cl, _) = c.compute_resource(&dc, None).await.unwrap();
    assert_eq!(cl, "Cluster0");
    let pool = c
        .must_find("resource pool", "/DC0/host/Cluster0/Resources")
        .await
        .unwrap();
    assert_eq!(pool.ty, "ResourcePool");
    let err = c
        .must_find("resource pool", "/DC0/host/Cluster0/Resources/nope")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    c.network(&dc, "VM Network").await.unwrap();
    env.done().await;
}

async fn make_vm(c: &Client, name: &str) -> (MoRef, MoRef, MoRef) {
    let (_, dc) = c.datacenter(None).await.unwrap();
    let folder = c.must_find("folder", "DC0/vm").await.unwrap();
    let root = c
        .must_find("pool", "DC0/host/Cluster0/Resources")
        .await
        .unwrap();
    let pool = match c.find_child(&root, "vch").await.unwrap() {
        Some(p) => p,
        None => c
            .create_resource_pool(&root, "vch", &Allocation::default(), &Allocation::default())
            .await
            .unwrap(),
    };
    let net = c.network(&dc, "VM Network").await.unwrap();
    let spec = VmConfigSpec {
        name: Some(name.into()),
        guest_id: Some("otherLinux64Guest".into()),
        vm_path_name: Some("[datastore1]".into()),
        num_cpus: Some(1),
        memory_mb: Some(256),
        extra_config: vec![("guestinfo.vch.id".into(), name.into())],
        devices: vec![
            DeviceChange::add(Device::PvScsi { key: -100, bus: 0 }),
            DeviceChange::create(Device::Disk {
                key: -1,
                controller_key: -100,
                unit: None,
                capacity_kb: 1024,
                file: String::new(),
                mode: "persistent".into(),
                thin: true,
            }),
            DeviceChange::add(Device::Nic {
                key: -2,
                vmxnet3: true,
                backing: NicBacking::Network {
                    name: "VM Network".into(),
                    network: net,
                },
                mac: None,
            }),
            DeviceChange::add(Device::Serial {
                key: -3,
                backing: SerialBacking::Uri {
                    uri: "tcp://127.0.0.1:2377".into(),
                },
            }),
        ],
        ..Default::default()
    };
    let vm = c.create_vm(&folder, &pool, None, &spec).await.unwrap();
    (vm, folder, pool)
}

#[tokio::test]
async fn vm_lifecycle_with_typed_faults() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (vm, folder, pool) = make_vm(&c, "c1").await;
    let devices = c
        .property(&vm, "config.hardware.device")
        .await
        .unwrap()
        .unwrap();
    let Value::Array { items, .. } = devices else {
        panic!("devices are an array")
    };
    let types: Vec<String> = items
        .iter()
        .map(|d| d.as_obj().unwrap().ty.clone())
        .collect();
    for t in [
        "ParaVirtualSCSIController",
        "VirtualDisk",
        "VirtualVmxnet3",
        "VirtualSerialPort",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    c.power_on(&vm).await.unwrap();
    let err = c.power_on(&vm).await.unwrap_err();
    assert_eq!(err.fault_type(), Some("InvalidPowerState"), "{err}");
    let Error::Fault(f) = &err else {
        unreachable!()
    };
    assert_eq!(f.detail.text("existingState"), Some("poweredOn"));

    // Instant clone from the running VM, with its own guestinfo.
    let child = c
        .instant_clone(
            &vm,
            &InstantCloneSpec {
                name: "c1-child".into(),
                location: Placement {
                    folder: Some(folder.clone()),
                    pool: Some(pool.clone()),
                    ..Default::default()
                },
                config: vec![("guestinfo.vch.id".into(), "child".into())],
                bios_uuid: None,
            },
        )
        .await
        .unwrap();
    let state = c
        .property(&child, "runtime.powerState")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.as_text(), Some("poweredOn"));
    let id = c
        .property(&child, r#"config.extraConfig["guestinfo.vch.id"]"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id.as_obj().unwrap().text("value"), Some("child"));

    // Destroying a running VM fails with the typed fault; powered off it goes.
    assert_eq!(
        c.destroy(&child).await.unwrap_err().fault_type(),
        Some("InvalidPowerState")
    );
    c.power_off(&child).await.unwrap();
    c.destroy(&child).await.unwrap();
    assert_eq!(c.find_by_path("DC0/vm/c1-child").await.unwrap(), None);
    c.rename(&vm, "c1-renamed").await.unwrap();
    assert!(c.find_by_path("DC0/vm/c1-renamed").await.unwrap().is_some());
    env.done().await;
}

#[tokio::test]
async fn watch_reports_enter_modify_leave() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (vm, _, pool) = make_vm(&c, "w1").await;
    let mut watch = Box::pin(c.watch(FilterSpec::pool_vms(&pool, &["name", "runtime.powerState"])));
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, UpdateKind::Enter);
    assert_eq!(first[0].obj, vm);
    c.power_on(&vm).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next[0].kind, UpdateKind::Modify);
    assert_eq!(next[0].changes[0].name, "runtime.powerState");
    assert_eq!(
        next[0].changes[0].val.as_ref().unwrap().as_text(),
        Some("poweredOn")
    );
    c.power_off(&vm).await.unwrap();
    let _ = watch.next().await.unwrap().unwrap();
    c.destroy(&vm).await.unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gone[0].kind, UpdateKind::Leave);
    env.done().await;
}

#[tokio::test]
async fn a_dropped_watch_destroys_its_collector() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (vm, _, _) = make_vm(&c, "w2").await;
    let collectors = || env.server.sim.state.read().collectors.len();
    let before = collectors();
    let mut watch = Box::pin(c.watch(FilterSpec::object(&vm, &["runtime.powerState"])));
    watch.next().await.unwrap().unwrap();
    assert_eq!(collectors(), before + 1);
    drop(watch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while collectors() > before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch's collector outlived the watch"
        );
        // allow-sleep: poll interval of a deadline loop
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.done().await;
}

#[tokio::test]
async fn paged_retrieval_reads_every_object() {
    let dir = std::env::temp_dir().join(format!("vsc-page-{}", std::process::id()));
    let mut cfg = SimConfig::new(&dir);
    cfg.model.vms = 250;
    let server = SimServer::start(
        cfg,
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(StateOnlyRuntime),
    )
    .await
    .unwrap();
    let env = Env { server, dir };
    let c = env.client().await;
    let root = c.service_content().root_folder.clone();
    let view = c
        .create_container_view(&root, &["VirtualMachine"], true)
        .await
        .unwrap();
    let all = c
        .retrieve(
            &FilterSpec::view(&view, "VirtualMachine", &["name", "runtime.powerState"]),
            Some(100),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 250);
    let mut names: Vec<&str> = all.iter().map(|o| o.text("name").unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 250);
    env.done().await;
}

#[tokio::test]
async fn networks_files_and_disks() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (_, dc) = c.datacenter(None).await.unwrap();
    let host = c
        .must_find("host", "DC0/host/Cluster0/DC0_C0_H0.sim.local")
        .await
        .unwrap();
    let ns = c
        .property(&host, "configManager.networkSystem")
        .await
        .unwrap()
        .unwrap();
    let ns = ns.as_moref().unwrap().clone();
    c.add_port_group(&ns, "vch-bridge", 0, "vSwitch0")
        .await
        .unwrap();
    assert_eq!(
        c.add_port_group(&ns, "vch-bridge", 0, "vSwitch0")
            .await
            .unwrap_err()
            .fault_type(),
        Some("AlreadyExists")
    );
    c.network(&dc, "vch-bridge").await.unwrap();
    let dvs = c.must_find("dvs", "DC0/network/DSwitch0").await.unwrap();
    c.create_dv_portgroup(&dvs, "vch-dpg", 8).await.unwrap();
    assert_eq!(
        c.create_dv_portgroup(&dvs, "vch-dpg", 8)
            .await
            .unwrap_err()
            .fault_type(),
        Some("DuplicateName")
    );

    c.make_directory(&dc, "[datastore1] vch/images", true)
        .await
        .unwrap();
    assert_eq!(
        c.make_directory(&dc, "[datastore1] vch/images", true)
            .await
            .unwrap_err()
            .fault_type(),
        Some("FileAlreadyExists")
    );
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    c.upload_bytes("DC0", "datastore1", "vch/images/blob", payload.clone())
        .await
        .unwrap();
    assert_eq!(
        c.download_bytes("DC0", "datastore1", "vch/images/blob", None)
            .await
            .unwrap(),
        payload
    );
    let part = c
        .download_bytes("DC0", "datastore1", "vch/images/blob", Some((10, Some(19))))
        .await
        .unwrap();
    assert_eq!(part, payload[10..20]);
    c.create_virtual_disk(&dc, "[datastore1] vch/images/l1.vmdk", 2048)
        .await
        .unwrap();
    c.copy_virtual_disk(
        &dc,
        "[datastore1] vch/images/l1.vmdk",
        "[datastore1] vch/images/l2.vmdk",
        false,
    )
    .await
    .unwrap();
    c.delete_virtual_disk(&dc, "[datastore1] vch/images/l1.vmdk")
        .await
        .unwrap();
    assert_eq!(
        c.delete_virtual_disk(&dc, "[datastore1] vch/images/l1.vmdk")
            .await
            .unwrap_err()
            .fault_type(),
        Some("FileNotFound")
    );
    c.move_datastore_file(
        &dc,
        "[datastore1] vch/images/blob",
        "[datastore1] vch/blob",
        false,
    )
    .await
    .unwrap();
    c.delete_datastore_file(&dc, "[datastore1] vch/blob")
        .await
        .unwrap();
    let err = c
        .download_bytes("DC0", "datastore1", "vch/blob", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 404, .. }), "{err}");
    let sid = c
        .rest_login("administrator@vsphere.local", "vmware")
        .await
        .unwrap();
    assert!(!sid.is_empty());
    env.done().await;
}

#[tokio::test]
async fn server_going_away_is_a_transport_error() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let dir = env.dir.clone();
    env.server.shutdown().await;
    // The simulator drops its keep-alive connections as their tasks see the shutdown; a
    // call on one that is still draining may be served. The first call that fails must
    // fail as a transport error.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        match c.datacenter(None).await {
            Err(e) => break e,
            Ok(_) => assert!(std::time::Instant::now() < deadline, "still served"),
        }
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn folders_pools_clones_snapshots_and_power_states() {
    let env = sim_with(None).await;
    let c = env.client().await;
    let (vm, folder, pool) = make_vm(&c, "src").await;
    let sub = c.create_folder(&folder, "vch-folder").await.unwrap();
    assert_eq!(
        c.create_folder(&folder, "vch-folder")
            .await
            .unwrap_err()
            .fault_type(),
        Some("DuplicateName")
    );
    let cpu = Allocation {
        limit: 2000,
        ..Allocation::default()
    };
    c.update_resource_pool(&pool, &cpu, &Allocation::default())
        .await
        .unwrap();
    let limit = c
        .property(&pool, "config.cpuAllocation.limit")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(limit.as_text(), Some("2000"));

    // Full clone into the sub-folder, then a linked clone from a snapshot.
    let full = c
        .clone_vm(&vm, &sub, "full", &CloneSpec::default())
        .await
        .unwrap();
    let disk_of = |v: Value| {
        let Value::Array { items, .. } = v else {
            panic!()
        };
        items
            .into_iter()
            .find(|d| d.as_obj().unwrap().ty == "VirtualDisk")
            .unwrap()
    };
    let d = disk_of(
        c.property(&full, "config.hardware.device")
            .await
            .unwrap()
            .unwrap(),
    );
    let file = d
        .as_obj()
        .unwrap()
        .get("backing")
        .unwrap()
        .as_obj()
        .unwrap()
        .text("fileName")
        .unwrap()
        .to_string();
    assert_eq!(file, "[datastore1] full/full.vmdk");
    let snap = c.create_snapshot(&vm, "base").await.unwrap();
    let linked = c
        .clone_vm(
            &vm,
            &sub,
            "linked",
            &CloneSpec {
                snapshot: Some(snap),
                location: Placement {
                    disk_move_type: Some("createNewChildDiskBacking".into()),
                    ..Default::default()
                },
                power_on: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let d = disk_of(
        c.property(&linked, "config.hardware.device")
            .await
            .unwrap()
            .unwrap(),
    );
    let backing = d
        .as_obj()
        .unwrap()
        .get("backing")
        .unwrap()
        .as_obj()
        .unwrap()
        .clone();
    assert!(
        backing.get("parent").is_some(),
        "linked clone disk has a parent"
    );
    assert_eq!(
        c.property(&linked, "runtime.powerState")
            .await
            .unwrap()
            .unwrap()
            .as_text(),
        Some("poweredOn")
    );
    c.suspend(&linked).await.unwrap();
    assert_eq!(
        c.property(&linked, "runtime.powerState")
            .await
            .unwrap()
            .unwrap()
            .as_text(),
        Some("suspended")
    );
    c.power_on(&linked).await.unwrap();
    c.reset(&linked).await.unwrap();
    c.power_off(&linked).await.unwrap();

    // Reconfigure: volatile guestinfo while running, persistent while off.
    c.power_on(&vm).await.unwrap();
    let set = |k: &str, v: &str| VmConfigSpec {
        extra_config: vec![(k.into(), v.into())],
        ..Default::default()
    };
    c.reconfigure_vm(&vm, &set("guestinfo.vch.state", "running"))
        .await
        .unwrap();
    let key = r#"config.extraConfig["guestinfo.vch.state"]"#;
    assert!(c.property(&vm, key).await.unwrap().is_some());
    c.power_off(&vm).await.unwrap();
    assert!(
        c.property(&vm, key).await.unwrap().is_none(),
        "runtime guestinfo vanishes at power-off"
    );
    c.reconfigure_vm(&vm, &set("guestinfo.vch.state", "exited"))
        .await
        .unwrap();
    c.power_on(&vm).await.unwrap();
    c.power_off(&vm).await.unwrap();
    assert!(
        c.property(&vm, key).await.unwrap().is_some(),
        "powered-off reconfigure persists"
    );

    // Destroying the pool moves its VMs to the parent pool.
    c.destroy(&pool).await.unwrap();
    let parent = c.property(&vm, "resourcePool").await.unwrap().unwrap();
    assert_eq!(
        parent.as_moref().unwrap().value,
        c.must_find("pool", "DC0/host/Cluster0/Resources")
            .await
            .unwrap()
            .value
    );
    env.done().await;
}
