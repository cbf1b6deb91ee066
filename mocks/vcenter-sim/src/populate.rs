//! The inventory of a fresh data directory: datacenters, DRS clusters, hosts, datastores
//! backed by local directories, the `VM Network` port group, a distributed switch, and
//! optionally many VMs for scale tests, sized by [`Model`]. Below the core: `sim` calls
//! it when it opens an empty data directory.

use crate::model::*;
use std::path::Path;
use vsphere_client::value::MoRef;

/// Bulk inventory shape for a fresh data directory (like vcsim's model flags).
#[derive(Debug, Clone)]
pub struct Model {
    pub datacenters: usize,
    /// Clusters per datacenter.
    pub clusters: usize,
    /// Hosts per cluster.
    pub hosts: usize,
    /// Datastores per datacenter.
    pub datastores: usize,
    /// VMs in all, spread over the clusters' root pools.
    pub vms: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            datacenters: 1,
            clusters: 1,
            hosts: 3,
            datastores: 1,
            vms: 0,
        }
    }
}

const HOST_CORES: i64 = 16;
const HOST_MHZ: i64 = 2400;
const HOST_MEMORY: i64 = 64 << 30;
const DATASTORE_CAPACITY: i64 = 1 << 40;

fn id(inv: &mut Inventory, prefix: &str) -> String {
    inv.next_id += 1;
    format!("{prefix}{}", inv.next_id)
}

fn folder(
    inv: &mut Inventory,
    name: &str,
    parent: &MoRef,
    child_type: &[&str],
    moref: Option<String>,
) -> MoRef {
    let m = MoRef::new("Folder", moref.unwrap_or_else(|| id(inv, "group-")));
    inv.insert(Entity {
        moref: m.clone(),
        name: name.into(),
        parent: Some(parent.clone()),
        kind: Kind::Folder(FolderData {
            child_type: child_type.iter().map(|s| s.to_string()).collect(),
            children: vec![],
        }),
    });
    m
}

fn push_child(inv: &mut Inventory, parent: &MoRef, child: &MoRef) {
    if let Some(Entity {
        kind: Kind::Folder(f),
        ..
    }) = inv.get_mut(parent)
    {
        f.children.push(child.clone());
    }
}

pub fn build(model: &Model, data_dir: &Path) -> Inventory {
    let mut inv = Inventory::default();
    let root = MoRef::new("Folder", "group-d1");
    inv.next_id = 1;
    inv.insert(Entity {
        moref: root.clone(),
        name: "Datacenters".into(),
        parent: None,
        kind: Kind::Folder(FolderData {
            child_type: vec!["Folder".into(), "Datacenter".into()],
            children: vec![],
        }),
    });
    inv.root_folder = root.clone();
    let mut pools = Vec::new();
    let mut vm_folders = Vec::new();
    for d in 0..model.datacenters.max(1) {
        let dc = MoRef::new("Datacenter", id(&mut inv, "datacenter-"));
        let dc_name = format!("DC{d}");
        inv.insert(Entity {
            moref: dc.clone(),
            name: dc_name.clone(),
            parent: Some(root.clone()),
            kind: Kind::Folder(FolderData {
                child_type: vec![],
                children: vec![],
            }),
        });
        push_child(&mut inv, &root, &dc);
        let vm_folder = folder(
            &mut inv,
            "vm",
            &dc,
            &["Folder", "VirtualMachine", "VirtualApp"],
            None,
        );
        let host_folder = folder(&mut inv, "host", &dc, &["Folder", "ComputeResource"], None);
        let ds_folder = folder(
            &mut inv,
            "datastore",
            &dc,
            &["Folder", "Datastore", "StoragePod"],
            None,
        );
        let net_folder = folder(
            &mut inv,
            "network",
            &dc,
            &["Folder", "Network", "DistributedVirtualSwitch"],
            None,
        );
        inv.get_mut(&dc).expect("just inserted").kind = Kind::Datacenter(DatacenterData {
            vm_folder: vm_folder.clone(),
            host_folder: host_folder.clone(),
            datastore_folder: ds_folder.clone(),
            network_folder: net_folder.clone(),
        });
        vm_folders.push(vm_folder.clone());

        let mut datastores = Vec::new();
        for s in 0..model.datastores.max(1) {
            let name = if d == 0 {
                format!("datastore{}", s + 1)
            } else {
                format!("{dc_name}_datastore{}", s + 1)
            };
            let dir = data_dir.join("datastores").join(&name);
            let _ = std::fs::create_dir_all(&dir);
            let dir = dir.canonicalize().unwrap_or(dir);
            let m = MoRef::new("Datastore", id(&mut inv, "datastore-"));
            inv.insert(Entity {
                moref: m.clone(),
                name,
                parent: Some(ds_folder.clone()),
                kind: Kind::Datastore(DatastoreData {
                    url: format!("ds://{}/", dir.display()),
                    dir: dir.to_string_lossy().into_owned(),
                    capacity: DATASTORE_CAPACITY,
                    hosts: vec![],
                }),
            });
            push_child(&mut inv, &ds_folder, &m);
            datastores.push(m);
        }

        let vm_network = MoRef::new("Network", id(&mut inv, "network-"));
        inv.insert(Entity {
            moref: vm_network.clone(),
            name: "VM Network".into(),
            parent: Some(net_folder.clone()),
            kind: Kind::Network(NetworkData { hosts: vec![] }),
        });
        push_child(&mut inv, &net_folder, &vm_network);

        let dvs = MoRef::new("VmwareDistributedVirtualSwitch", id(&mut inv, "dvs-"));
        let dvpg = MoRef::new("DistributedVirtualPortgroup", id(&mut inv, "dvportgroup-"));
        inv.insert(Entity {
            moref: dvs.clone(),
            name: "DSwitch0".into(),
            parent: Some(net_folder.clone()),
            kind: Kind::DvSwitch(DvSwitchData {
                uuid: uuid::Uuid::new_v4().to_string(),
                portgroups: vec![dvpg.clone()],
                hosts: vec![],
            }),
        });
        push_child(&mut inv, &net_folder, &dvs);
        inv.insert(Entity {
            moref: dvpg.clone(),
            name: "DPortGroup0".into(),
            parent: Some(net_folder.clone()),
            kind: Kind::DvPortgroup(DvPortgroupData {
                dvs: dvs.clone(),
                key: dvpg.value.clone(),
                num_ports: 128,
                binding: "earlyBinding".into(),
                vlan_id: 0,
            }),
        });
        push_child(&mut inv, &net_folder, &dvpg);

        let mut all_hosts = Vec::new();
        for c in 0..model.clusters.max(1) {
            let cluster = MoRef::new("ClusterComputeResource", id(&mut inv, "domain-c"));
            let pool = MoRef::new("ResourcePool", id(&mut inv, "resgroup-"));
            let mut hosts = Vec::new();
            for h in 0..model.hosts.max(1) {
                let host = MoRef::new("HostSystem", id(&mut inv, "host-"));
                inv.insert(Entity {
                    moref: host.clone(),
                    name: format!("{dc_name}_C{c}_H{h}.sim.local"),
                    parent: Some(cluster.clone()),
                    kind: Kind::Host(HostData {
                        cluster: cluster.clone(),
                        datastores: datastores.clone(),
                        networks: vec![vm_network.clone(), dvpg.clone()],
                        portgroups: vec![HostPortGroup {
                            name: "VM Network".into(),
                            vlan_id: 0,
                            vswitch: "vSwitch0".into(),
                        }],
                        uuid: uuid::Uuid::new_v4().to_string(),
                        cpu_cores: HOST_CORES,
                        cpu_mhz: HOST_MHZ,
                        memory_bytes: HOST_MEMORY,
                    }),
                });
                hosts.push(host);
            }
            inv.insert(Entity {
                moref: pool.clone(),
                name: "Resources".into(),
                parent: Some(cluster.clone()),
                kind: Kind::Pool(PoolData {
                    owner: cluster.clone(),
                    children: vec![],
                    vms: vec![],
                    cpu: Allocation {
                        reservation: HOST_CORES * HOST_MHZ * hosts.len() as i64,
                        expandable_reservation: false,
                        ..Allocation::default()
                    },
                    memory: Allocation {
                        reservation: (HOST_MEMORY >> 20) * hosts.len() as i64,
                        expandable_reservation: false,
                        ..Allocation::default()
                    },
                    change_version: 1,
                }),
            });
            inv.insert(Entity {
                moref: cluster.clone(),
                name: format!("Cluster{c}"),
                parent: Some(host_folder.clone()),
                kind: Kind::Cluster(ClusterData {
                    hosts: hosts.clone(),
                    root_pool: pool.clone(),
                    datastores: datastores.clone(),
                    networks: vec![vm_network.clone(), dvpg.clone()],
                    drs_enabled: true,
                }),
            });
            push_child(&mut inv, &host_folder, &cluster);
            pools.push((
                pool,
                vm_folder.clone(),
                hosts.clone(),
                datastores[0].clone(),
            ));
            all_hosts.extend(hosts);
        }
        for ds in &datastores {
            if let Some(Entity {
                kind: Kind::Datastore(dd),
                ..
            }) = inv.get_mut(ds)
            {
                dd.hosts = all_hosts.clone();
            }
        }
        if let Some(Entity {
            kind: Kind::Network(n),
            ..
        }) = inv.get_mut(&vm_network)
        {
            n.hosts = all_hosts.clone();
        }
        if let Some(Entity {
            kind: Kind::DvSwitch(s),
            ..
        }) = inv.get_mut(&dvs)
        {
            s.hosts = all_hosts.clone();
        }
    }
    populate_vms(&mut inv, model.vms, &pools);
    inv.dirty.clear();
    inv
}

/// Bulk VMs: powered off, no devices beyond the base hardware, no files on the
/// datastore (creating 100K directories would dominate start-up and prove nothing).
fn populate_vms(inv: &mut Inventory, n: usize, pools: &[(MoRef, MoRef, Vec<MoRef>, MoRef)]) {
    if pools.is_empty() {
        return;
    }
    let now = crate::props::now();
    inv.entities.reserve(n);
    for i in 0..n {
        let (pool, folder, hosts, ds) = &pools[i % pools.len()];
        let m = MoRef::new("VirtualMachine", id(inv, "vm-"));
        let name = format!("VM{i}");
        let ds_name = inv.get(ds).map(|e| e.name.clone()).unwrap_or_default();
        let v = VmData {
            folder: folder.clone(),
            pool: pool.clone(),
            host: hosts[i % hosts.len()].clone(),
            datastore: ds.clone(),
            power_state: PowerState::PoweredOff,
            uuid: uuid::Uuid::new_v4().to_string(),
            instance_uuid: uuid::Uuid::new_v4().to_string(),
            guest_id: "otherGuest64".into(),
            num_cpu: 1,
            cores_per_socket: 1,
            memory_mb: 128,
            annotation: String::new(),
            hw_version: "vmx-19".into(),
            template: false,
            vmx_path: format!("[{ds_name}] {name}/{name}.vmx"),
            extra_config: Vec::new(),
            volatile_guestinfo: Vec::new(),
            devices: Vec::new(),
            snapshots: Vec::new(),
            current_snapshot: None,
            boot_time: None,
            create_date: now.clone(),
            change_version: 1,
            instant_clone_parent: None,
            cpu_alloc: Allocation::default(),
            mem_alloc: Allocation::default(),
            hot_plug: crate::model::HotPlug::default(),
        };
        inv.entities.insert(
            m.value.clone(),
            Entity {
                moref: m.clone(),
                name,
                parent: Some(folder.clone()),
                kind: Kind::Vm(Box::new(v)),
            },
        );
        if let Some(Entity {
            kind: Kind::Folder(f),
            ..
        }) = inv.entities.get_mut(&folder.value)
        {
            f.children.push(m.clone());
        }
        if let Some(Entity {
            kind: Kind::Pool(p),
            ..
        }) = inv.entities.get_mut(&pool.value)
        {
            p.vms.push(m);
        }
    }
}

/// Recreates datastore directories that went missing (e.g. a copied data dir).
pub fn ensure_datastore_dirs(inv: &Inventory) {
    for e in inv.all_of_kind("Datastore") {
        if let Kind::Datastore(d) = &e.kind {
            let _ = std::fs::create_dir_all(&d.dir);
        }
    }
}

/// The simulated vCenter's `about.instanceUuid`, stable across restarts.
pub fn instance_uuid(data_dir: &Path) -> String {
    let path = data_dir.join("instance-uuid");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    let u = uuid::Uuid::new_v4().to_string();
    let _ = std::fs::write(&path, &u);
    u
}
