//! vim25 property values of every managed object the simulator serves, built on demand
//! from the compact state, and property-path navigation (`config.hardware.device`,
//! `config.extraConfig["guestinfo.x"]`).

use crate::model::*;
use crate::soap::Fault;
use crate::state::{State, View};
use vsphere_client::value::{DataObject, MoRef, Value};

pub const API_VERSION: &str = "8.0.3.0";
pub const PRODUCT_VERSION: &str = "8.0.3";
pub const PRODUCT_BUILD: &str = "24022515";

pub fn service_instance() -> MoRef {
    MoRef::new("ServiceInstance", "ServiceInstance")
}
pub fn property_collector() -> MoRef {
    MoRef::new("PropertyCollector", "propertyCollector")
}
pub fn view_manager() -> MoRef {
    MoRef::new("ViewManager", "ViewManager")
}
pub fn session_manager() -> MoRef {
    MoRef::new("SessionManager", "SessionManager")
}
pub fn search_index() -> MoRef {
    MoRef::new("SearchIndex", "SearchIndex")
}
pub fn file_manager() -> MoRef {
    MoRef::new("FileManager", "FileManager")
}
pub fn virtual_disk_manager() -> MoRef {
    MoRef::new("VirtualDiskManager", "virtualDiskManager")
}
pub fn task_manager() -> MoRef {
    MoRef::new("TaskManager", "TaskManager")
}

/// A host's `configManager.networkSystem`.
pub fn network_system_of(host: &MoRef) -> MoRef {
    MoRef::new("HostNetworkSystem", format!("networkSystem-{}", host.value))
}
/// A datastore's `browser`.
pub fn browser_of(ds: &MoRef) -> MoRef {
    MoRef::new(
        "HostDatastoreBrowser",
        format!("datastoreBrowser-{}", ds.value),
    )
}

pub fn about(instance_uuid: &str) -> Value {
    Value::Obj(
        DataObject::new("AboutInfo")
            .with("name", Value::string("VMware vCenter Server"))
            .with(
                "fullName",
                Value::string(format!(
                    "VMware vCenter Server {PRODUCT_VERSION} build-{PRODUCT_BUILD} (vcenter-sim)"
                )),
            )
            .with("vendor", Value::string("VMware, Inc."))
            .with("version", Value::string(PRODUCT_VERSION))
            .with("build", Value::string(PRODUCT_BUILD))
            .with("localeVersion", Value::string("INTL"))
            .with("localeBuild", Value::string("000"))
            .with("osType", Value::string("linux-x64"))
            .with("productLineId", Value::string("vpx"))
            .with("apiType", Value::string("VirtualCenter"))
            .with("apiVersion", Value::string(API_VERSION))
            .with("instanceUuid", Value::string(instance_uuid))
            .with(
                "licenseProductName",
                Value::string("VMware VirtualCenter Server"),
            )
            .with("licenseProductVersion", Value::string("8.0")),
    )
}

pub fn service_content(root: &MoRef, instance_uuid: &str) -> Value {
    Value::Obj(
        DataObject::new("ServiceContent")
            .with("rootFolder", Value::moref(root))
            .with("propertyCollector", Value::moref(&property_collector()))
            .with("viewManager", Value::moref(&view_manager()))
            .with("about", about(instance_uuid))
            .with("sessionManager", Value::moref(&session_manager()))
            .with("taskManager", Value::moref(&task_manager()))
            .with("searchIndex", Value::moref(&search_index()))
            .with("fileManager", Value::moref(&file_manager()))
            .with("virtualDiskManager", Value::moref(&virtual_disk_manager())),
    )
}

/// Who is asking: property values that depend on the caller's session.
#[derive(Debug, Clone, Default)]
pub struct PropCtx {
    pub instance_uuid: String,
    pub session_key: Option<String>,
    /// The caller's `UserSession`, for `SessionManager.currentSession`.
    pub session: Option<Value>,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn alloc_value(a: &Allocation) -> Value {
    Value::Obj(
        DataObject::new("ResourceAllocationInfo")
            .with("reservation", Value::long(a.reservation))
            .with(
                "expandableReservation",
                Value::bool(a.expandable_reservation),
            )
            .with("limit", Value::long(a.limit))
            .with(
                "shares",
                Value::Obj(
                    DataObject::new("SharesInfo")
                        .with("shares", Value::int(a.shares))
                        .with("level", Value::enumv("SharesLevel", &a.level)),
                ),
            ),
    )
}

/// Reads a `ResourceAllocationInfo` sent by a client onto an existing allocation.
pub fn apply_alloc(a: &mut Allocation, v: &DataObject) {
    if let Some(r) = v.i64("reservation") {
        a.reservation = r;
    }
    if let Some(t) = v.text("expandableReservation") {
        a.expandable_reservation = t == "true" || t == "1";
    }
    if let Some(l) = v.i64("limit") {
        a.limit = l;
    }
    if let Some(s) = v.get("shares").and_then(Value::as_obj) {
        if let Some(n) = s.i64("shares") {
            a.shares = n;
        }
        if let Some(l) = s.text("level") {
            a.level = l.to_string();
        }
    }
}

fn resource_config(entity: &MoRef, cpu: &Allocation, mem: &Allocation, change: u64) -> Value {
    Value::Obj(
        DataObject::new("ResourceConfigSpec")
            .with("entity", Value::moref(entity))
            .with("changeVersion", Value::string(change.to_string()))
            .with("cpuAllocation", alloc_value(cpu))
            .with("memoryAllocation", alloc_value(mem)),
    )
}

/// Hardware every VM has and that cannot be removed; user devices come on top.
pub fn base_devices() -> Vec<Value> {
    let ctl = |ty: &str, key: i64, label: &str, bus: i64| {
        Value::Obj(
            DataObject::new(ty)
                .with("key", Value::int(key))
                .with("deviceInfo", description(label, label))
                .with("busNumber", Value::int(bus)),
        )
    };
    vec![
        ctl("VirtualIDEController", 200, "IDE 0", 0),
        ctl("VirtualIDEController", 201, "IDE 1", 1),
        ctl("VirtualPS2Controller", 300, "PS2 controller 0", 0),
        ctl("VirtualPCIController", 100, "PCI controller 0", 0),
        ctl("VirtualSIOController", 400, "SIO controller 0", 0),
        Value::Obj(
            DataObject::new("VirtualKeyboard")
                .with("key", Value::int(600))
                .with("deviceInfo", description("Keyboard", "Keyboard"))
                .with("controllerKey", Value::int(300))
                .with("unitNumber", Value::int(0)),
        ),
        Value::Obj(
            DataObject::new("VirtualMachineVideoCard")
                .with("key", Value::int(500))
                .with("deviceInfo", description("Video card", "Video card"))
                .with("controllerKey", Value::int(100))
                .with("unitNumber", Value::int(0))
                .with("videoRamSizeInKB", Value::long(4096))
                .with("numDisplays", Value::int(1)),
        ),
    ]
}

pub const BASE_DEVICE_KEYS: &[i64] = &[100, 200, 201, 300, 400, 500, 600];

pub fn description(label: &str, summary: &str) -> Value {
    Value::Obj(
        DataObject::new("Description")
            .with("label", Value::string(label))
            .with("summary", Value::string(summary)),
    )
}

fn extra_config_value(pairs: &[(String, String)]) -> Value {
    Value::array(
        "OptionValue",
        pairs
            .iter()
            .map(|(k, v)| {
                Value::Obj(
                    DataObject::new("OptionValue")
                        .with("key", Value::string(k))
                        .with("value", Value::Any(Box::new(Value::string(v)))),
                )
            })
            .collect(),
    )
}

fn vm_devices(v: &VmData) -> Value {
    let mut all = base_devices();
    all.extend(v.devices.iter().cloned().map(Value::Obj));
    // Each controller lists the keys of the devices on it (`VirtualController.device`),
    // derived here so it can never disagree with the devices' `controllerKey`.
    let attached: Vec<(i64, i64)> = all
        .iter()
        .filter_map(|d| {
            let o = d.as_obj()?;
            Some((o.i64("controllerKey")?, o.i64("key")?))
        })
        .collect();
    for d in all.iter_mut() {
        let Value::Obj(o) = d else { continue };
        if !o.ty.ends_with("Controller") {
            continue;
        }
        let Some(key) = o.i64("key") else { continue };
        let keys: Vec<Value> = attached
            .iter()
            .filter(|(c, _)| *c == key)
            .map(|(_, k)| Value::int(*k))
            .collect();
        o.remove("device");
        if !keys.is_empty() {
            o.set("device", Value::array("xsd:int", keys));
        }
    }
    Value::array("VirtualDevice", all)
}

fn vm_runtime(e: &Entity, v: &VmData) -> Value {
    let _ = e;
    Value::Obj(
        DataObject::new("VirtualMachineRuntimeInfo")
            .with(
                "device",
                Value::array("VirtualMachineDeviceRuntimeInfo", vec![]),
            )
            .with("host", Value::moref(&v.host))
            .with(
                "connectionState",
                Value::enumv("VirtualMachineConnectionState", "connected"),
            )
            .with(
                "powerState",
                Value::enumv("VirtualMachinePowerState", v.power_state.wire()),
            )
            .with(
                "faultToleranceState",
                Value::enumv("VirtualMachineFaultToleranceState", "notConfigured"),
            )
            .with("toolsInstallerMounted", Value::bool(false))
            .with("bootTime", v.boot_time.as_ref().map(Value::datetime))
            .with("suspendInterval", Value::long(0))
            .with("maxCpuUsage", Value::int(v.num_cpu * 2000))
            .with("maxMemoryUsage", Value::int(v.memory_mb))
            .with("numMksConnections", Value::int(0))
            .with(
                "recordReplayState",
                Value::enumv("VirtualMachineRecordReplayState", "inactive"),
            )
            .with("onlineStandby", Value::bool(false))
            .with("consolidationNeeded", Value::bool(false))
            .with("instantCloneFrozen", Value::bool(false)),
    )
}

fn vm_files(v: &VmData) -> Value {
    let dir = v
        .vmx_path
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    Value::Obj(
        DataObject::new("VirtualMachineFileInfo")
            .with("vmPathName", Value::string(&v.vmx_path))
            .with("snapshotDirectory", Value::string(&dir))
            .with("suspendDirectory", Value::string(&dir))
            .with("logDirectory", Value::string(&dir)),
    )
}

fn vm_config(e: &Entity, v: &VmData) -> Value {
    Value::Obj(
        DataObject::new("VirtualMachineConfigInfo")
            .with("changeVersion", Value::string(v.change_version.to_string()))
            .with("modified", Value::datetime(&v.create_date))
            .with("name", Value::string(&e.name))
            .with("guestFullName", Value::string(guest_full_name(&v.guest_id)))
            .with("version", Value::string(&v.hw_version))
            .with("uuid", Value::string(&v.uuid))
            .with("createDate", Value::datetime(&v.create_date))
            .with("instanceUuid", Value::string(&v.instance_uuid))
            .with("template", Value::bool(v.template))
            .with("guestId", Value::string(&v.guest_id))
            .with("alternateGuestName", Value::string(""))
            .with("annotation", Value::string(&v.annotation))
            .with("files", vm_files(v))
            .with(
                "flags",
                Value::Obj(DataObject::new("VirtualMachineFlagInfo")),
            )
            .with(
                "defaultPowerOps",
                Value::Obj(
                    DataObject::new("VirtualMachineDefaultPowerOpInfo")
                        .with("powerOffType", Value::string("soft"))
                        .with("suspendType", Value::string("hard"))
                        .with("resetType", Value::string("soft")),
                ),
            )
            .with(
                "hardware",
                Value::Obj(
                    DataObject::new("VirtualHardware")
                        .with("numCPU", Value::int(v.num_cpu))
                        .with("numCoresPerSocket", Value::int(v.cores_per_socket))
                        .with("memoryMB", Value::int(v.memory_mb))
                        .with("virtualICH7MPresent", Value::bool(false))
                        .with("virtualSMCPresent", Value::bool(false))
                        .with("device", vm_devices(v)),
                ),
            )
            .with("cpuAllocation", alloc_value(&v.cpu_alloc))
            .with("memoryAllocation", alloc_value(&v.mem_alloc))
            .with("memoryHotAddEnabled", Value::bool(v.hot_plug.memory_add))
            .with("cpuHotAddEnabled", Value::bool(v.hot_plug.cpu_add))
            .with("cpuHotRemoveEnabled", Value::bool(v.hot_plug.cpu_remove))
            .with(
                "extraConfig",
                extra_config_value(&v.effective_extra_config()),
            ),
    )
}

fn guest_full_name(id: &str) -> &'static str {
    match id {
        "otherLinux64Guest" => "Other Linux (64-bit)",
        "debian12_64Guest" => "Debian GNU/Linux 12 (64-bit)",
        "otherGuest" => "Other (32-bit)",
        _ => "Other (64-bit)",
    }
}

fn vm_guest(v: &VmData) -> Value {
    let running = v.power_state == PowerState::PoweredOn;
    Value::Obj(
        DataObject::new("GuestInfo")
            .with(
                "toolsStatus",
                Value::enumv("VirtualMachineToolsStatus", "toolsNotInstalled"),
            )
            .with(
                "toolsRunningStatus",
                Value::string(if running {
                    "guestToolsRunning"
                } else {
                    "guestToolsNotRunning"
                }),
            )
            .with("guestId", Value::string(&v.guest_id))
            .with(
                "guestState",
                Value::string(if running { "running" } else { "notRunning" }),
            )
            .with("guestOperationsReady", Value::bool(false))
            .with("interactiveGuestOperationsReady", Value::bool(false)),
    )
}

fn count_devices(v: &VmData, pred: fn(&str) -> bool) -> i64 {
    v.devices.iter().filter(|d| pred(&d.ty)).count() as i64
}

pub fn is_nic(ty: &str) -> bool {
    matches!(
        ty,
        "VirtualVmxnet3"
            | "VirtualE1000"
            | "VirtualE1000e"
            | "VirtualVmxnet2"
            | "VirtualPCNet32"
            | "VirtualVmxnet"
    )
}

fn vm_summary(e: &Entity, v: &VmData) -> Value {
    Value::Obj(
        DataObject::new("VirtualMachineSummary")
            .with("vm", Value::moref(&e.moref))
            .with("runtime", vm_runtime(e, v))
            .with(
                "guest",
                Value::Obj(
                    DataObject::new("VirtualMachineGuestSummary")
                        .with("guestId", Value::string(&v.guest_id))
                        .with(
                            "toolsStatus",
                            Value::enumv("VirtualMachineToolsStatus", "toolsNotInstalled"),
                        ),
                ),
            )
            .with(
                "config",
                Value::Obj(
                    DataObject::new("VirtualMachineConfigSummary")
                        .with("name", Value::string(&e.name))
                        .with("template", Value::bool(v.template))
                        .with("vmPathName", Value::string(&v.vmx_path))
                        .with("memorySizeMB", Value::int(v.memory_mb))
                        .with("numCpu", Value::int(v.num_cpu))
                        .with("numEthernetCards", Value::int(count_devices(v, is_nic)))
                        .with(
                            "numVirtualDisks",
                            Value::int(count_devices(v, |t| t == "VirtualDisk")),
                        )
                        .with("uuid", Value::string(&v.uuid))
                        .with("instanceUuid", Value::string(&v.instance_uuid))
                        .with("guestId", Value::string(&v.guest_id))
                        .with("guestFullName", Value::string(guest_full_name(&v.guest_id)))
                        .with("annotation", Value::string(&v.annotation)),
                ),
            )
            .with(
                "quickStats",
                Value::Obj(DataObject::new("VirtualMachineQuickStats").with(
                    "guestHeartbeatStatus",
                    Value::enumv("ManagedEntityStatus", "gray"),
                )),
            )
            .with(
                "overallStatus",
                Value::enumv("ManagedEntityStatus", "green"),
            ),
    )
}

fn snapshot_tree(vm: &MoRef, v: &VmData, parent: Option<&MoRef>) -> Vec<Value> {
    v.snapshots
        .iter()
        .filter(|s| s.parent.as_ref() == parent)
        .map(|s| {
            Value::Obj(
                DataObject::new("VirtualMachineSnapshotTree")
                    .with("snapshot", Value::moref(&s.moref))
                    .with("vm", Value::moref(vm))
                    .with("name", Value::string(&s.name))
                    .with("description", Value::string(&s.description))
                    .with("id", Value::int(s.id))
                    .with("createTime", Value::datetime(&s.create_time))
                    .with(
                        "state",
                        Value::enumv("VirtualMachinePowerState", s.power_state.wire()),
                    )
                    .with("quiesced", Value::bool(false))
                    .with(
                        "childSnapshotList",
                        Value::array(
                            "VirtualMachineSnapshotTree",
                            snapshot_tree(vm, v, Some(&s.moref)),
                        ),
                    ),
            )
        })
        .collect()
}

fn status(name: &str) -> Option<Value> {
    match name {
        "overallStatus" | "configStatus" => Some(Value::enumv("ManagedEntityStatus", "green")),
        _ => None,
    }
}

/// Properties every ManagedEntity has.
fn entity_common(st: &State, e: &Entity, name: &str) -> Option<Option<Value>> {
    let v = match name {
        "name" => Some(Value::string(&e.name)),
        "parent" => e.parent.as_ref().map(Value::moref),
        "overallStatus" | "configStatus" => status(name),
        "alarmActionsEnabled" => Some(Value::bool(true)),
        "recentTask" => Some(Value::morefs(
            st.task_order
                .iter()
                .filter_map(|id| st.tasks.get(id))
                // Recent tasks in any state (queued, running, success, error), as vCenter.
                .filter(|t| t.entity.as_ref() == Some(&e.moref))
                .map(|t| &t.moref),
        )),
        "customValue" => Some(Value::array("CustomFieldValue", vec![])),
        "value" => Some(Value::array("CustomFieldValue", vec![])),
        "availableField" => Some(Value::array("CustomFieldDef", vec![])),
        "declaredAlarmState" => Some(Value::array("AlarmState", vec![])),
        "triggeredAlarmState" => Some(Value::array("AlarmState", vec![])),
        "disabledMethod" => Some(Value::strings([])),
        "effectiveRole" => Some(Value::array("xsd:int", vec![Value::int(-1)])),
        "permission" => Some(Value::array("Permission", vec![])),
        "tag" => Some(Value::array("Tag", vec![])),
        "configIssue" => Some(Value::array("Event", vec![])),
        _ => return None,
    };
    Some(v)
}

const ENTITY_PROPS: &[&str] = &[
    "name",
    "parent",
    "overallStatus",
    "configStatus",
    "alarmActionsEnabled",
    "recentTask",
    "customValue",
    "value",
    "availableField",
    "declaredAlarmState",
    "triggeredAlarmState",
    "disabledMethod",
    "effectiveRole",
    "permission",
    "tag",
    "configIssue",
];

/// Names returned for `PropertySpec.all = true`.
pub fn all_properties(ty: &str) -> Vec<&'static str> {
    let own: &[&str] = match ty {
        "Folder" => &["childType", "childEntity"],
        "Datacenter" => &[
            "vmFolder",
            "hostFolder",
            "datastoreFolder",
            "networkFolder",
            "datastore",
            "network",
        ],
        "ClusterComputeResource" => &[
            "host",
            "resourcePool",
            "datastore",
            "network",
            "summary",
            "configurationEx",
        ],
        "HostSystem" => &[
            "vm",
            "datastore",
            "network",
            "runtime",
            "summary",
            "hardware",
            "configManager",
        ],
        "ResourcePool" => &[
            "owner",
            "resourcePool",
            "vm",
            "config",
            "summary",
            "runtime",
        ],
        "VirtualMachine" => &[
            "config",
            "runtime",
            "summary",
            "guest",
            "resourcePool",
            "datastore",
            "network",
            "snapshot",
            "rootSnapshot",
            "guestHeartbeatStatus",
        ],
        "Datastore" => &["summary", "info", "browser", "host", "vm", "capability"],
        "Network" => &["summary", "host", "vm"],
        "DistributedVirtualPortgroup" => &["summary", "host", "vm", "key", "config"],
        "VmwareDistributedVirtualSwitch" => &["uuid", "portgroup", "summary", "config"],
        "Task" => return vec!["info"],
        "ContainerView" => return vec!["view", "container", "type", "recursive"],
        "ListView" => return vec!["view"],
        _ => &[],
    };
    let mut v: Vec<&'static str> = ENTITY_PROPS.to_vec();
    v.extend_from_slice(own);
    v
}

/// Value of a top-level property; `Err(InvalidProperty)` when the type has no such
/// property, `Ok(None)` when it exists but is unset.
pub fn top_level(
    st: &State,
    obj: &MoRef,
    name: &str,
    cx: &PropCtx,
) -> Result<Option<Value>, Fault> {
    if let Some(e) = st.inv.get(obj) {
        return entity_property(st, e, name);
    }
    let bad = || Err(Fault::invalid_property(name));
    match obj.ty.as_str() {
        "ServiceInstance" => match name {
            "content" => Ok(Some(service_content(
                &st.inv.root_folder,
                &cx.instance_uuid,
            ))),
            "serverClock" => Ok(Some(Value::datetime(now()))),
            "capability" => Ok(Some(Value::Obj(
                DataObject::new("Capability")
                    .with("provisioningSupported", Value::bool(true))
                    .with("multiHostSupported", Value::bool(true))
                    .with("userShellAccessSupported", Value::bool(false)),
            ))),
            _ => bad(),
        },
        "TaskManager" => match name {
            "recentTask" => Ok(Some(Value::morefs(
                st.task_order
                    .iter()
                    .filter_map(|id| st.tasks.get(id))
                    .map(|t| &t.moref),
            ))),
            _ => bad(),
        },
        "Task" => {
            let Some(t) = st.tasks.get(&obj.value) else {
                return Err(Fault::not_found(obj));
            };
            match name {
                "info" => Ok(Some(task_info(t))),
                _ => bad(),
            }
        }
        "ContainerView" | "ListView" => {
            let Some(v) = st.views.get(&obj.value) else {
                return Err(Fault::not_found(obj));
            };
            match (&v.view, name) {
                (_, "view") => Ok(Some(Value::morefs(&crate::state::view_members(
                    st, &v.view,
                )))),
                (View::Container { container, .. }, "container") => {
                    Ok(Some(Value::moref(container)))
                }
                (View::Container { types, .. }, "type") => {
                    Ok(Some(Value::strings(types.iter().map(String::as_str))))
                }
                (View::Container { recursive, .. }, "recursive") => {
                    Ok(Some(Value::bool(*recursive)))
                }
                _ => bad(),
            }
        }
        "PropertyFilter" => {
            let Some(f) = st.filters.get(&obj.value) else {
                return Err(Fault::not_found(obj));
            };
            match name {
                "partialUpdates" => Ok(Some(Value::bool(f.partial_updates))),
                "spec" => Ok(Some(Value::from_element(&f.spec.raw))),
                _ => bad(),
            }
        }
        "HostNetworkSystem" => {
            let host = MoRef::new("HostSystem", obj.value.trim_start_matches("networkSystem-"));
            let Some(Kind::Host(h)) = st.inv.get(&host).map(|e| &e.kind) else {
                return Err(Fault::not_found(obj));
            };
            match name {
                "networkInfo" => Ok(Some(host_network_info(h))),
                _ => bad(),
            }
        }
        "HostDatastoreBrowser" => {
            let ds = MoRef::new(
                "Datastore",
                obj.value.trim_start_matches("datastoreBrowser-"),
            );
            match name {
                "datastore" => Ok(Some(Value::morefs([&ds]))),
                _ => bad(),
            }
        }
        "VirtualMachineSnapshot" => {
            let found = st
                .inv
                .all_of_kind("VirtualMachine")
                .find_map(|e| match &e.kind {
                    Kind::Vm(v) => v
                        .snapshots
                        .iter()
                        .find(|s| s.moref == *obj)
                        .map(|s| (e, v, s)),
                    _ => None,
                });
            let Some((e, v, s)) = found else {
                return Err(Fault::not_found(obj));
            };
            match name {
                "vm" => Ok(Some(Value::moref(&e.moref))),
                "childSnapshot" => Ok(Some(Value::morefs(
                    v.snapshots
                        .iter()
                        .filter(|c| c.parent.as_ref() == Some(&s.moref))
                        .map(|c| &c.moref),
                ))),
                "config" => {
                    let mut frozen = v.clone();
                    frozen.devices = s.devices.clone();
                    frozen.extra_config = s.extra_config.clone();
                    frozen.volatile_guestinfo.clear();
                    Ok(Some(vm_config(e, &frozen)))
                }
                _ => bad(),
            }
        }
        "SessionManager" if name == "currentSession" => Ok(cx.session.clone()),
        "SessionManager" if name == "sessionList" => Ok(Some(Value::array(
            "UserSession",
            cx.session.clone().into_iter().collect(),
        ))),
        "PropertyCollector" if name == "filter" => Ok(Some(Value::morefs(
            st.filters
                .values()
                .filter(|f| {
                    cx.session_key.as_deref() == Some(f.session.as_str()) && f.collector == *obj
                })
                .map(|f| &f.moref),
        ))),
        "SessionManager" | "PropertyCollector" | "ViewManager" | "SearchIndex" | "FileManager"
        | "VirtualDiskManager" => bad(),
        _ => Err(Fault::not_found(obj)),
    }
}

pub fn task_info(t: &crate::state::TaskData) -> Value {
    Value::Obj(
        DataObject::new("TaskInfo")
            .with("key", Value::string(&t.key))
            .with("task", Value::moref(&t.moref))
            .with("name", Value::string(&t.method))
            .with("descriptionId", Value::string(&t.description_id))
            .with("entity", t.entity.as_ref().map(Value::moref))
            .with("entityName", t.entity_name.as_ref().map(Value::string))
            .with("state", Value::enumv("TaskInfoState", t.state.wire()))
            .with("cancelled", Value::bool(false))
            .with("cancelable", Value::bool(false))
            .with("error", t.error.as_ref().map(|f| f.to_localized()))
            .with("result", t.result.clone().map(|r| Value::Any(Box::new(r))))
            .with("progress", t.progress.map(Value::int))
            .with(
                "reason",
                Value::Obj(
                    DataObject::new("TaskReasonUser").with("userName", Value::string(&t.user)),
                ),
            )
            .with("queueTime", Value::datetime(&t.queue_time))
            .with("startTime", t.start_time.as_ref().map(Value::datetime))
            .with(
                "completeTime",
                t.complete_time.as_ref().map(Value::datetime),
            )
            .with("eventChainId", Value::int(t.event_chain_id)),
    )
}

fn host_network_info(h: &HostData) -> Value {
    let pgs = h
        .portgroups
        .iter()
        .map(|pg| {
            Value::Obj(
                DataObject::new("HostPortGroup")
                    .with(
                        "key",
                        Value::string(format!("key-vim.host.PortGroup-{}", pg.name)),
                    )
                    .with(
                        "vswitch",
                        Value::string(format!("key-vim.host.VirtualSwitch-{}", pg.vswitch)),
                    )
                    .with(
                        "spec",
                        Value::Obj(
                            DataObject::new("HostPortGroupSpec")
                                .with("name", Value::string(&pg.name))
                                .with("vlanId", Value::int(pg.vlan_id))
                                .with("vswitchName", Value::string(&pg.vswitch))
                                .with("policy", Value::Obj(DataObject::new("HostNetworkPolicy"))),
                        ),
                    ),
            )
        })
        .collect();
    let vswitch = Value::Obj(
        DataObject::new("HostVirtualSwitch")
            .with("name", Value::string("vSwitch0"))
            .with("key", Value::string("key-vim.host.VirtualSwitch-vSwitch0"))
            .with("numPorts", Value::int(1536))
            .with("numPortsAvailable", Value::int(1530))
            .with("mtu", Value::int(1500))
            .with(
                "portgroup",
                Value::strings(
                    h.portgroups
                        .iter()
                        .map(|pg| format!("key-vim.host.PortGroup-{}", pg.name))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str),
                ),
            ),
    );
    Value::Obj(
        DataObject::new("HostNetworkInfo")
            .with("vswitch", Value::array("HostVirtualSwitch", vec![vswitch]))
            .with("portgroup", Value::array("HostPortGroup", pgs)),
    )
}

fn entity_property(st: &State, e: &Entity, name: &str) -> Result<Option<Value>, Fault> {
    if let Some(v) = entity_common(st, e, name) {
        return Ok(v);
    }
    let bad = || Err(Fault::invalid_property(name));
    let v = match (&e.kind, name) {
        (Kind::Folder(f), "childEntity") => Value::morefs(&f.children),
        (Kind::Folder(f), "childType") => Value::strings(f.child_type.iter().map(String::as_str)),
        (Kind::Datacenter(d), "vmFolder") => Value::moref(&d.vm_folder),
        (Kind::Datacenter(d), "hostFolder") => Value::moref(&d.host_folder),
        (Kind::Datacenter(d), "datastoreFolder") => Value::moref(&d.datastore_folder),
        (Kind::Datacenter(d), "networkFolder") => Value::moref(&d.network_folder),
        (Kind::Datacenter(d), "datastore") => children_of(st, &d.datastore_folder, "Datastore"),
        (Kind::Datacenter(d), "network") => children_of(st, &d.network_folder, "Network"),
        (Kind::Cluster(c), "host") => Value::morefs(&c.hosts),
        (Kind::Cluster(c), "resourcePool") => Value::moref(&c.root_pool),
        (Kind::Cluster(c), "datastore") => Value::morefs(&c.datastores),
        (Kind::Cluster(c), "network") => Value::morefs(&c.networks),
        (Kind::Cluster(c), "summary") => cluster_summary(st, c),
        (Kind::Cluster(c), "configurationEx") => Value::Obj(
            DataObject::new("ClusterConfigInfoEx")
                .with(
                    "dasConfig",
                    Value::Obj(
                        DataObject::new("ClusterDasConfigInfo").with("enabled", Value::bool(false)),
                    ),
                )
                .with(
                    "drsConfig",
                    Value::Obj(
                        DataObject::new("ClusterDrsConfigInfo")
                            .with("enabled", Value::bool(c.drs_enabled))
                            .with(
                                "defaultVmBehavior",
                                Value::enumv("DrsBehavior", "fullyAutomated"),
                            ),
                    ),
                ),
        ),
        (Kind::Host(_), "vm") => Value::morefs(&st.inv.vms_using(&e.moref)),
        (Kind::Host(h), "datastore") => Value::morefs(&h.datastores),
        (Kind::Host(h), "network") => Value::morefs(&h.networks),
        (Kind::Host(_), "runtime") => host_runtime(),
        (Kind::Host(h), "hardware") => Value::Obj(
            DataObject::new("HostHardwareInfo")
                .with(
                    "systemInfo",
                    Value::Obj(
                        DataObject::new("HostSystemInfo")
                            .with("vendor", Value::string("VMware, Inc. (vcenter-sim)"))
                            .with("model", Value::string("Simulated Host"))
                            .with("uuid", Value::string(&h.uuid)),
                    ),
                )
                .with(
                    "cpuInfo",
                    Value::Obj(
                        DataObject::new("HostCpuInfo")
                            .with("numCpuPackages", Value::short(1))
                            .with("numCpuCores", Value::short(h.cpu_cores))
                            .with("numCpuThreads", Value::short(h.cpu_cores))
                            .with("hz", Value::long(h.cpu_mhz * 1_000_000)),
                    ),
                )
                .with("memorySize", Value::long(h.memory_bytes)),
        ),
        (Kind::Host(h), "summary") => host_summary(e, h),
        (Kind::Host(_), "configManager") => Value::Obj(
            DataObject::new("HostConfigManager")
                .with("networkSystem", Value::moref(&network_system_of(&e.moref))),
        ),
        (Kind::Pool(p), "owner") => Value::moref(&p.owner),
        (Kind::Pool(p), "resourcePool") => Value::morefs(&p.children),
        (Kind::Pool(p), "vm") => Value::morefs(&p.vms),
        (Kind::Pool(p), "config") => resource_config(&e.moref, &p.cpu, &p.memory, p.change_version),
        (Kind::Pool(p), "summary") => Value::Obj(
            DataObject::new("ResourcePoolSummary")
                .with("name", Value::string(&e.name))
                .with(
                    "config",
                    resource_config(&e.moref, &p.cpu, &p.memory, p.change_version),
                ),
        ),
        (Kind::Pool(_), "runtime") => Value::Obj(
            DataObject::new("ResourcePoolRuntimeInfo")
                .with("memory", pool_usage())
                .with("cpu", pool_usage())
                .with(
                    "overallStatus",
                    Value::enumv("ManagedEntityStatus", "green"),
                ),
        ),
        (Kind::Vm(v), "config") => vm_config(e, v),
        (Kind::Vm(v), "runtime") => vm_runtime(e, v),
        (Kind::Vm(v), "summary") => vm_summary(e, v),
        (Kind::Vm(v), "guest") => vm_guest(v),
        (Kind::Vm(_), "guestHeartbeatStatus") => Value::enumv("ManagedEntityStatus", "gray"),
        // A template belongs to no resource pool (vCenter leaves the property unset).
        (Kind::Vm(v), "resourcePool") if v.template => return Ok(None),
        (Kind::Vm(v), "resourcePool") => Value::moref(&v.pool),
        (Kind::Vm(v), "datastore") => Value::morefs([&v.datastore]),
        (Kind::Vm(v), "network") => Value::morefs(&vm_networks(v)),
        (Kind::Vm(v), "snapshot") => {
            if v.snapshots.is_empty() {
                return Ok(None);
            }
            Value::Obj(
                DataObject::new("VirtualMachineSnapshotInfo")
                    .with(
                        "currentSnapshot",
                        v.current_snapshot.as_ref().map(Value::moref),
                    )
                    .with(
                        "rootSnapshotList",
                        Value::array(
                            "VirtualMachineSnapshotTree",
                            snapshot_tree(&e.moref, v, None),
                        ),
                    ),
            )
        }
        (Kind::Vm(v), "rootSnapshot") => Value::morefs(
            v.snapshots
                .iter()
                .filter(|s| s.parent.is_none())
                .map(|s| &s.moref),
        ),
        (Kind::Datastore(d), "summary") => datastore_summary(e, d),
        (Kind::Datastore(d), "info") => Value::Obj(
            DataObject::new("LocalDatastoreInfo")
                .with("name", Value::string(&e.name))
                .with("url", Value::string(&d.url))
                .with("freeSpace", Value::long(free_space(d)))
                .with("maxFileSize", Value::long(d.capacity))
                .with("path", Value::string(&d.dir)),
        ),
        (Kind::Datastore(_), "browser") => Value::moref(&browser_of(&e.moref)),
        (Kind::Datastore(d), "host") => Value::array(
            "DatastoreHostMount",
            d.hosts
                .iter()
                .map(|h| {
                    Value::Obj(
                        DataObject::new("DatastoreHostMount")
                            .with("key", Value::moref(h))
                            .with(
                                "mountInfo",
                                Value::Obj(
                                    DataObject::new("HostMountInfo")
                                        .with("path", Value::string(&d.dir))
                                        .with("accessMode", Value::string("readWrite"))
                                        .with("mounted", Value::bool(true))
                                        .with("accessible", Value::bool(true)),
                                ),
                            ),
                    )
                })
                .collect(),
        ),
        (Kind::Datastore(_), "vm") => Value::morefs(&st.inv.vms_using(&e.moref)),
        (Kind::Datastore(_), "capability") => Value::Obj(
            DataObject::new("DatastoreCapability")
                .with("directoryHierarchySupported", Value::bool(true))
                .with("rawDiskMappingsSupported", Value::bool(false))
                .with("perFileThinProvisioningSupported", Value::bool(true))
                .with("storageIORMSupported", Value::bool(false))
                .with("nativeSnapshotSupported", Value::bool(false)),
        ),
        (Kind::Network(n), "host") => Value::morefs(&n.hosts),
        (Kind::DvPortgroup(p), "host") => match st.inv.get(&p.dvs).map(|d| &d.kind) {
            Some(Kind::DvSwitch(d)) => Value::morefs(&d.hosts),
            _ => Value::morefs([]),
        },
        (Kind::Network(_) | Kind::DvPortgroup(_), "vm") => {
            Value::morefs(&st.inv.vms_using(&e.moref))
        }
        (Kind::Network(_) | Kind::DvPortgroup(_), "summary") => Value::Obj(
            DataObject::new("NetworkSummary")
                .with("network", Value::moref(&e.moref))
                .with("name", Value::string(&e.name))
                .with("accessible", Value::bool(true)),
        ),
        (Kind::DvPortgroup(p), "key") => Value::string(&p.key),
        (Kind::DvPortgroup(p), "config") => dvpg_config(st, e, p),
        (Kind::DvSwitch(d), "uuid") => Value::string(&d.uuid),
        (Kind::DvSwitch(d), "portgroup") => Value::morefs(&d.portgroups),
        (Kind::DvSwitch(d), "summary") => Value::Obj(
            DataObject::new("DVSSummary")
                .with("name", Value::string(&e.name))
                .with("uuid", Value::string(&d.uuid))
                .with("numPorts", Value::int(dvs_ports(st, d)))
                .with(
                    "portgroupName",
                    Value::strings(
                        d.portgroups
                            .iter()
                            .filter_map(|p| st.inv.get(p))
                            .map(|p| p.name.as_str()),
                    ),
                ),
        ),
        (Kind::DvSwitch(d), "config") => Value::Obj(
            DataObject::new("VMwareDVSConfigInfo")
                .with("uuid", Value::string(&d.uuid))
                .with("name", Value::string(&e.name))
                .with("numStandalonePorts", Value::int(0))
                .with("numPorts", Value::int(dvs_ports(st, d)))
                .with("maxPorts", Value::int(2_147_483_647))
                .with("configVersion", Value::string("1"))
                .with("createTime", Value::datetime("2026-01-01T00:00:00Z"))
                .with("networkResourceManagementEnabled", Value::bool(false)),
        ),
        _ => return bad(),
    };
    Ok(Some(v))
}

fn dvs_ports(st: &State, d: &DvSwitchData) -> i64 {
    d.portgroups
        .iter()
        .filter_map(|p| match st.inv.get(p).map(|e| &e.kind) {
            Some(Kind::DvPortgroup(pg)) => Some(pg.num_ports),
            _ => None,
        })
        .sum()
}

fn dvpg_config(st: &State, e: &Entity, p: &DvPortgroupData) -> Value {
    let _ = st;
    Value::Obj(
        DataObject::new("DVPortgroupConfigInfo")
            .with("key", Value::string(&p.key))
            .with("name", Value::string(&e.name))
            .with("numPorts", Value::int(p.num_ports))
            .with("distributedVirtualSwitch", Value::moref(&p.dvs))
            .with(
                "defaultPortConfig",
                Value::Obj(
                    DataObject::new("VMwareDVSPortSetting").with(
                        "vlan",
                        Value::Obj(
                            DataObject::new("VmwareDistributedVirtualSwitchVlanIdSpec")
                                .with("inherited", Value::bool(false))
                                .with("vlanId", Value::int(p.vlan_id)),
                        ),
                    ),
                ),
            )
            .with("type", Value::string(&p.binding))
            .with("autoExpand", Value::bool(true)),
    )
}

fn pool_usage() -> Value {
    Value::Obj(
        DataObject::new("ResourcePoolResourceUsage")
            .with("reservationUsed", Value::long(0))
            .with("reservationUsedForVm", Value::long(0))
            .with("unreservedForPool", Value::long(0))
            .with("unreservedForVm", Value::long(0))
            .with("overallUsage", Value::long(0))
            .with("maxUsage", Value::long(0)),
    )
}

fn host_runtime() -> Value {
    Value::Obj(
        DataObject::new("HostRuntimeInfo")
            .with(
                "connectionState",
                Value::enumv("HostSystemConnectionState", "connected"),
            )
            .with(
                "powerState",
                Value::enumv("HostSystemPowerState", "poweredOn"),
            )
            .with("inMaintenanceMode", Value::bool(false))
            .with("inQuarantineMode", Value::bool(false))
            .with("bootTime", Value::datetime("2026-01-01T00:00:00Z")),
    )
}

fn host_summary(e: &Entity, h: &HostData) -> Value {
    Value::Obj(
        DataObject::new("HostListSummary")
            .with("host", Value::moref(&e.moref))
            .with(
                "hardware",
                Value::Obj(
                    DataObject::new("HostHardwareSummary")
                        .with("vendor", Value::string("VMware, Inc. (vcenter-sim)"))
                        .with("model", Value::string("Simulated Host"))
                        .with("uuid", Value::string(&h.uuid))
                        .with("memorySize", Value::long(h.memory_bytes))
                        .with("cpuModel", Value::string("Simulated CPU"))
                        .with("cpuMhz", Value::int(h.cpu_mhz))
                        .with("numCpuPkgs", Value::short(1))
                        .with("numCpuCores", Value::short(h.cpu_cores))
                        .with("numCpuThreads", Value::short(h.cpu_cores))
                        .with("numNics", Value::int(1))
                        .with("numHBAs", Value::int(1)),
                ),
            )
            .with("runtime", host_runtime())
            .with(
                "config",
                Value::Obj(
                    DataObject::new("HostConfigSummary")
                        .with("name", Value::string(&e.name))
                        .with("port", Value::int(443))
                        .with("vmotionEnabled", Value::bool(false))
                        .with("faultToleranceEnabled", Value::bool(false)),
                ),
            )
            .with(
                "quickStats",
                Value::Obj(DataObject::new("HostListSummaryQuickStats")),
            )
            .with(
                "overallStatus",
                Value::enumv("ManagedEntityStatus", "green"),
            )
            .with("rebootRequired", Value::bool(false)),
    )
}

fn cluster_summary(st: &State, c: &ClusterData) -> Value {
    let (mut cpu, mut mem, mut cores) = (0i64, 0i64, 0i64);
    for h in &c.hosts {
        if let Some(Kind::Host(hd)) = st.inv.get(h).map(|e| &e.kind) {
            cpu += hd.cpu_mhz * hd.cpu_cores;
            mem += hd.memory_bytes;
            cores += hd.cpu_cores;
        }
    }
    let n = c.hosts.len() as i64;
    Value::Obj(
        DataObject::new("ClusterComputeResourceSummary")
            .with("totalCpu", Value::int(cpu))
            .with("totalMemory", Value::long(mem))
            .with("numCpuCores", Value::short(cores))
            .with("numCpuThreads", Value::short(cores))
            .with("effectiveCpu", Value::int(cpu))
            .with("effectiveMemory", Value::long(mem / (1024 * 1024)))
            .with("numHosts", Value::int(n))
            .with("numEffectiveHosts", Value::int(n))
            .with(
                "overallStatus",
                Value::enumv("ManagedEntityStatus", "green"),
            )
            .with("currentFailoverLevel", Value::int(0))
            .with("numVmotions", Value::int(0)),
    )
}

pub fn free_space(d: &DatastoreData) -> i64 {
    // Report the real free space of the backing filesystem, capped at the capacity.
    let used = dir_size(std::path::Path::new(&d.dir));
    (d.capacity - used).max(0)
}

fn dir_size(p: &std::path::Path) -> i64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                (m.blocks() * 512) as i64
            }
            Err(_) => 0,
        })
        .sum()
}

fn datastore_summary(e: &Entity, d: &DatastoreData) -> Value {
    Value::Obj(
        DataObject::new("DatastoreSummary")
            .with("datastore", Value::moref(&e.moref))
            .with("name", Value::string(&e.name))
            .with("url", Value::string(&d.url))
            .with("capacity", Value::long(d.capacity))
            .with("freeSpace", Value::long(free_space(d)))
            .with("uncommitted", Value::long(0))
            .with("accessible", Value::bool(true))
            .with("multipleHostAccess", Value::bool(d.hosts.len() > 1))
            .with("type", Value::string("VMFS"))
            .with("maintenanceMode", Value::string("normal")),
    )
}

fn children_of(st: &State, folder: &MoRef, ty: &str) -> Value {
    let mut out = Vec::new();
    let mut stack = vec![folder.clone()];
    while let Some(f) = stack.pop() {
        if let Some(Kind::Folder(fd)) = st.inv.get(&f).map(|e| &e.kind) {
            for c in &fd.children {
                if c.ty == "Folder" {
                    stack.push(c.clone());
                } else if is_a(&c.ty, ty) {
                    out.push(c.clone());
                }
            }
        }
    }
    Value::morefs(&out)
}

/// One step of a property path: a field name and an optional `["key"]` selector.
struct Step<'a> {
    name: &'a str,
    key: Option<&'a str>,
}

/// Splits `config.extraConfig["guestinfo.a.b"].value` into steps; dots inside the
/// quoted key belong to the key.
fn split_path(path: &str) -> Result<Vec<Step<'_>>, Fault> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() {
            return Err(Fault::invalid_property(path));
        }
        rest = &rest[end..];
        let mut key = None;
        if let Some(r) = rest.strip_prefix("[\"") {
            let close = r.find("\"]").ok_or_else(|| Fault::invalid_property(path))?;
            key = Some(&r[..close]);
            rest = &r[close + 2..];
        }
        steps.push(Step { name, key });
        if let Some(r) = rest.strip_prefix('.') {
            if r.is_empty() {
                return Err(Fault::invalid_property(path));
            }
            rest = r;
        } else if !rest.is_empty() {
            return Err(Fault::invalid_property(path));
        }
    }
    if steps.is_empty() {
        return Err(Fault::invalid_property(path));
    }
    Ok(steps)
}

fn select_key(v: Value, key: &str, path: &str) -> Result<Option<Value>, Fault> {
    match v {
        Value::Array { items, .. } => Ok(items.into_iter().find(|item| {
            item.as_obj()
                .and_then(|o| o.get("key"))
                .map(|k| match k {
                    Value::Prim { text, .. } => text.trim() == key,
                    _ => false,
                })
                .unwrap_or(false)
        })),
        _ => Err(Fault::invalid_property(path)),
    }
}

/// The value at a full property path.
pub fn property(st: &State, obj: &MoRef, path: &str, cx: &PropCtx) -> Result<Option<Value>, Fault> {
    // Fast paths for the properties every inventory listing asks for.
    if let Some(e) = st.inv.get(obj) {
        match (path, &e.kind) {
            ("name", _) => return Ok(Some(Value::string(&e.name))),
            ("runtime.powerState" | "summary.runtime.powerState", Kind::Vm(v)) => {
                return Ok(Some(Value::enumv(
                    "VirtualMachinePowerState",
                    v.power_state.wire(),
                )))
            }
            _ => {}
        }
    }
    let steps = split_path(path)?;
    let first = &steps[0];
    let mut cur = match top_level(st, obj, first.name, cx)? {
        Some(v) => v,
        None => return Ok(None),
    };
    if let Some(k) = first.key {
        cur = match select_key(cur, k, path)? {
            Some(v) => v,
            None => return Ok(None),
        };
    }
    for step in &steps[1..] {
        let next = match cur.as_obj() {
            Some(o) => o.get(step.name).cloned(),
            None => return Err(Fault::invalid_property(path)),
        };
        cur = match next {
            Some(v) => v,
            None => return Ok(None),
        };
        if let Some(k) = step.key {
            cur = match select_key(cur, k, path)? {
                Some(v) => v,
                None => return Ok(None),
            };
        }
    }
    Ok(Some(cur))
}
