//! Request specs the VCH sends: VM config (devices, extraConfig), clone and instant-clone
//! specs, resource allocation, port groups. Each builds its vim25 data object.

use crate::value::{DataObject, MoRef, Value};

fn any_string(s: &str) -> Value {
    Value::Any(Box::new(Value::string(s)))
}

fn option_values(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| {
            Value::Obj(
                DataObject::new("OptionValue")
                    .with("key", Value::string(k))
                    .with("value", any_string(v)),
            )
        })
        .collect()
}

/// CPU or memory allocation (`ResourceAllocationInfo`). Limit -1 = unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub reservation: i64,
    pub expandable_reservation: bool,
    pub limit: i64,
    pub shares_level: String,
    pub shares: i64,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            reservation: 0,
            expandable_reservation: true,
            limit: -1,
            shares_level: "normal".into(),
            shares: 4000,
        }
    }
}

impl Allocation {
    pub fn to_value(&self) -> Value {
        Value::Obj(
            DataObject::new("ResourceAllocationInfo")
                .with("reservation", Value::long(self.reservation))
                .with(
                    "expandableReservation",
                    Value::bool(self.expandable_reservation),
                )
                .with("limit", Value::long(self.limit))
                .with(
                    "shares",
                    Value::Obj(
                        DataObject::new("SharesInfo")
                            .with("shares", Value::int(self.shares))
                            .with("level", Value::enumv("SharesLevel", &self.shares_level)),
                    ),
                ),
        )
    }
}

/// `ResourceConfigSpec` for CreateResourcePool / UpdateConfig.
pub fn resource_config(cpu: &Allocation, memory: &Allocation) -> Value {
    Value::Obj(
        DataObject::new("ResourceConfigSpec")
            .with("cpuAllocation", cpu.to_value())
            .with("memoryAllocation", memory.to_value()),
    )
}

#[derive(Debug, Clone, PartialEq)]
pub enum NicBacking {
    /// A standard port group, by name and network reference.
    Network { name: String, network: MoRef },
    /// A distributed port group.
    Distributed {
        switch_uuid: String,
        portgroup_key: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SerialBacking {
    /// Network-backed: `tcp://host:port`, the VM connects as a client.
    Uri { uri: String },
    /// File on a datastore: `[ds] dir/file`.
    File { path: String },
}

/// The devices the VCH attaches. `Raw` passes any other device through.
#[derive(Debug, Clone, PartialEq)]
pub enum Device {
    PvScsi {
        key: i64,
        bus: i64,
    },
    Disk {
        key: i64,
        controller_key: i64,
        unit: Option<i64>,
        capacity_kb: i64,
        /// `[ds] path.vmdk`; empty with `FileOp::Create` lets the server name it.
        file: String,
        /// `persistent`, `independent_persistent`, `independent_nonpersistent`, ...
        mode: String,
        thin: bool,
    },
    Nic {
        key: i64,
        vmxnet3: bool,
        backing: NicBacking,
        mac: Option<String>,
    },
    Serial {
        key: i64,
        backing: SerialBacking,
    },
    Raw(DataObject),
}

fn connectable(start: bool) -> Value {
    Value::Obj(
        DataObject::new("VirtualDeviceConnectInfo")
            .with("startConnected", Value::bool(start))
            .with("allowGuestControl", Value::bool(true))
            .with("connected", Value::bool(false)),
    )
}

impl Device {
    pub fn to_value(&self) -> Value {
        let obj = match self {
            Device::PvScsi { key, bus } => DataObject::new("ParaVirtualSCSIController")
                .with("key", Value::int(*key))
                .with("busNumber", Value::int(*bus))
                .with("sharedBus", Value::enumv("VirtualSCSISharing", "noSharing")),
            Device::Disk {
                key,
                controller_key,
                unit,
                capacity_kb,
                file,
                mode,
                thin,
            } => DataObject::new("VirtualDisk")
                .with("key", Value::int(*key))
                .with(
                    "backing",
                    Value::Obj(
                        DataObject::new("VirtualDiskFlatVer2BackingInfo")
                            .with("fileName", Value::string(file))
                            .with("diskMode", Value::string(mode))
                            .with("thinProvisioned", Value::bool(*thin)),
                    ),
                )
                .with("controllerKey", Value::int(*controller_key))
                .with("unitNumber", unit.map(Value::int))
                .with("capacityInKB", Value::long(*capacity_kb)),
            Device::Nic {
                key,
                vmxnet3,
                backing,
                mac,
            } => {
                let backing = match backing {
                    NicBacking::Network { name, network } => {
                        DataObject::new("VirtualEthernetCardNetworkBackingInfo")
                            .with("deviceName", Value::string(name))
                            .with("network", Value::moref(network))
                    }
                    NicBacking::Distributed {
                        switch_uuid,
                        portgroup_key,
                    } => DataObject::new("VirtualEthernetCardDistributedVirtualPortBackingInfo")
                        .with(
                            "port",
                            Value::Obj(
                                DataObject::new("DistributedVirtualSwitchPortConnection")
                                    .with("switchUuid", Value::string(switch_uuid))
                                    .with("portgroupKey", Value::string(portgroup_key)),
                            ),
                        ),
                };
                let mut d = DataObject::new(if *vmxnet3 {
                    "VirtualVmxnet3"
                } else {
                    "VirtualE1000"
                })
                .with("key", Value::int(*key))
                .with("backing", Value::Obj(backing))
                .with("connectable", connectable(true));
                if let Some(m) = mac {
                    d = d
                        .with("addressType", Value::string("manual"))
                        .with("macAddress", Value::string(m));
                }
                d
            }
            Device::Serial { key, backing } => {
                let backing = match backing {
                    SerialBacking::Uri { uri } => {
                        DataObject::new("VirtualSerialPortURIBackingInfo")
                            .with("serviceURI", Value::string(uri))
                            .with("direction", Value::string("client"))
                    }
                    SerialBacking::File { path } => {
                        DataObject::new("VirtualSerialPortFileBackingInfo")
                            .with("fileName", Value::string(path))
                    }
                };
                DataObject::new("VirtualSerialPort")
                    .with("key", Value::int(*key))
                    .with("backing", Value::Obj(backing))
                    .with("connectable", connectable(true))
                    .with("yieldOnPoll", Value::bool(true))
            }
            Device::Raw(o) => o.clone(),
        };
        Value::Obj(obj)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    Add,
    Edit,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    Create,
    Destroy,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceChange {
    pub op: DeviceOp,
    pub file_op: Option<FileOp>,
    pub device: Device,
}

impl DeviceChange {
    pub fn add(device: Device) -> Self {
        DeviceChange {
            op: DeviceOp::Add,
            file_op: None,
            device,
        }
    }
    pub fn create(device: Device) -> Self {
        DeviceChange {
            op: DeviceOp::Add,
            file_op: Some(FileOp::Create),
            device,
        }
    }
    pub fn to_value(&self) -> Value {
        let op = match self.op {
            DeviceOp::Add => "add",
            DeviceOp::Edit => "edit",
            DeviceOp::Remove => "remove",
        };
        let fop = self.file_op.map(|f| match f {
            FileOp::Create => "create",
            FileOp::Destroy => "destroy",
            FileOp::Replace => "replace",
        });
        Value::Obj(
            DataObject::new("VirtualDeviceConfigSpec")
                .with(
                    "operation",
                    Value::enumv("VirtualDeviceConfigSpecOperation", op),
                )
                .with(
                    "fileOperation",
                    fop.map(|f| Value::enumv("VirtualDeviceConfigSpecFileOperation", f)),
                )
                .with("device", self.device.to_value()),
        )
    }
}

/// `VirtualMachineConfigSpec`: unset fields are left unchanged by a reconfigure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmConfigSpec {
    pub name: Option<String>,
    pub guest_id: Option<String>,
    /// `[ds]` lets the server create a directory named after the VM.
    pub vm_path_name: Option<String>,
    pub num_cpus: Option<i64>,
    pub memory_mb: Option<i64>,
    /// Hot-plug switches: vSphere only accepts memory/vCPU changes of a powered-on VM
    /// when these are on, and only lets them change while it is off.
    pub memory_hot_add_enabled: Option<bool>,
    pub cpu_hot_add_enabled: Option<bool>,
    pub cpu_hot_remove_enabled: Option<bool>,
    pub annotation: Option<String>,
    /// Empty value removes a key.
    pub extra_config: Vec<(String, String)>,
    pub devices: Vec<DeviceChange>,
    pub cpu_allocation: Option<Allocation>,
    pub memory_allocation: Option<Allocation>,
}

impl VmConfigSpec {
    pub fn to_value(&self) -> Value {
        // Field order follows the WSDL sequence.
        let mut o = DataObject::new("VirtualMachineConfigSpec")
            .with("name", self.name.as_deref().map(Value::string))
            .with("guestId", self.guest_id.as_deref().map(Value::string))
            .with("annotation", self.annotation.as_deref().map(Value::string));
        if let Some(p) = &self.vm_path_name {
            o = o.with(
                "files",
                Value::Obj(
                    DataObject::new("VirtualMachineFileInfo").with("vmPathName", Value::string(p)),
                ),
            );
        }
        o = o
            .with("numCPUs", self.num_cpus.map(Value::int))
            .with("memoryMB", self.memory_mb.map(Value::long))
            .with(
                "memoryHotAddEnabled",
                self.memory_hot_add_enabled.map(Value::bool),
            )
            .with(
                "cpuHotAddEnabled",
                self.cpu_hot_add_enabled.map(Value::bool),
            )
            .with(
                "cpuHotRemoveEnabled",
                self.cpu_hot_remove_enabled.map(Value::bool),
            );
        if !self.devices.is_empty() {
            o = o.with(
                "deviceChange",
                Value::array(
                    "VirtualDeviceConfigSpec",
                    self.devices.iter().map(DeviceChange::to_value).collect(),
                ),
            );
        }
        o = o
            .with(
                "cpuAllocation",
                self.cpu_allocation.as_ref().map(Allocation::to_value),
            )
            .with(
                "memoryAllocation",
                self.memory_allocation.as_ref().map(Allocation::to_value),
            );
        if !self.extra_config.is_empty() {
            o = o.with(
                "extraConfig",
                Value::array("OptionValue", option_values(&self.extra_config)),
            );
        }
        Value::Obj(o)
    }
}

/// `VirtualMachineRelocateSpec`: where a clone goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Placement {
    pub folder: Option<MoRef>,
    pub pool: Option<MoRef>,
    pub datastore: Option<MoRef>,
    pub host: Option<MoRef>,
    /// `createNewChildDiskBacking` for a linked clone.
    pub disk_move_type: Option<String>,
    pub devices: Vec<DeviceChange>,
}

impl Placement {
    pub fn to_value(&self) -> Value {
        let mut o = DataObject::new("VirtualMachineRelocateSpec")
            .with("folder", self.folder.as_ref().map(Value::moref))
            .with("datastore", self.datastore.as_ref().map(Value::moref))
            .with(
                "diskMoveType",
                self.disk_move_type.as_deref().map(Value::string),
            )
            .with("pool", self.pool.as_ref().map(Value::moref))
            .with("host", self.host.as_ref().map(Value::moref));
        if !self.devices.is_empty() {
            o = o.with(
                "deviceChange",
                Value::array(
                    "VirtualDeviceConfigSpec",
                    self.devices.iter().map(DeviceChange::to_value).collect(),
                ),
            );
        }
        Value::Obj(o)
    }
}

/// `VirtualMachineCloneSpec`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CloneSpec {
    pub location: Placement,
    pub template: bool,
    pub config: Option<VmConfigSpec>,
    pub power_on: bool,
    pub snapshot: Option<MoRef>,
}

impl CloneSpec {
    pub fn to_value(&self) -> Value {
        Value::Obj(
            DataObject::new("VirtualMachineCloneSpec")
                .with("location", self.location.to_value())
                .with("template", Value::bool(self.template))
                .with("config", self.config.as_ref().map(VmConfigSpec::to_value))
                .with("powerOn", Value::bool(self.power_on))
                .with("snapshot", self.snapshot.as_ref().map(Value::moref)),
        )
    }
}

/// `VirtualMachineInstantCloneSpec`: `config` becomes the child's extraConfig.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstantCloneSpec {
    pub name: String,
    pub location: Placement,
    pub config: Vec<(String, String)>,
    pub bios_uuid: Option<String>,
}

impl InstantCloneSpec {
    pub fn to_value(&self) -> Value {
        let mut o = DataObject::new("VirtualMachineInstantCloneSpec")
            .with("name", Value::string(&self.name))
            .with("location", self.location.to_value());
        if !self.config.is_empty() {
            o = o.with(
                "config",
                Value::array("OptionValue", option_values(&self.config)),
            );
        }
        Value::Obj(o.with("biosUuid", self.bios_uuid.as_deref().map(Value::string)))
    }
}

/// `HostPortGroupSpec` on `vSwitch0`-style standard switches.
pub fn host_port_group(name: &str, vlan: i64, vswitch: &str) -> Value {
    Value::Obj(
        DataObject::new("HostPortGroupSpec")
            .with("name", Value::string(name))
            .with("vlanId", Value::int(vlan))
            .with("vswitchName", Value::string(vswitch))
            .with("policy", Value::Obj(DataObject::new("HostNetworkPolicy"))),
    )
}

/// `DVPortgroupConfigSpec` with early binding.
pub fn dv_portgroup(name: &str, ports: i64) -> Value {
    Value::Obj(
        DataObject::new("DVPortgroupConfigSpec")
            .with("name", Value::string(name))
            .with("numPorts", Value::int(ports))
            .with("type", Value::string("earlyBinding")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_spec_encodes_devices_and_any_typed_extra_config() {
        let spec = VmConfigSpec {
            name: Some("c1".into()),
            vm_path_name: Some("[datastore1]".into()),
            extra_config: vec![("guestinfo.vch.id".into(), "abc".into())],
            devices: vec![DeviceChange::add(Device::Serial {
                key: -1,
                backing: SerialBacking::Uri {
                    uri: "tcp://127.0.0.1:2377".into(),
                },
            })],
            ..Default::default()
        };
        let mut out = String::new();
        spec.to_value().encode(&mut out, "spec", false);
        assert!(
            out.contains(r#"<value xsi:type="xsd:string">abc</value>"#),
            "{out}"
        );
        assert!(out.contains(r#"<backing xsi:type="VirtualSerialPortURIBackingInfo"><serviceURI>tcp://127.0.0.1:2377</serviceURI>"#));
        assert!(out.contains(r#"<files xsi:type="VirtualMachineFileInfo"><vmPathName>[datastore1]</vmPathName></files>"#));
    }
}
