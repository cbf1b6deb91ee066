"""Small shared helpers for the pyvmomi-driven simulator tests.

Everything here goes through the public vim25 API (or the datastore HTTP interface),
the way an admin script would; the only shortcut is `ds_local`, which maps a datastore
path to the directory the simulator reports as the datastore's backing store
(`Datastore.info.path`), so tests can check files appear and disappear.
"""

import os
import ssl
import time
import urllib.parse
import warnings
from pathlib import Path

import pytest
import requests
import urllib3
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

DS = "datastore1"
VM_NETWORK = "VM Network"
DPG = "DPortGroup0"
DVS = "DSwitch0"


# --- inventory lookups ---------------------------------------------------------------

def find_all(si, vimtype, container=None):
    """All objects of a type under `container` (default: the root folder)."""
    content = si.content
    view = content.viewManager.CreateContainerView(
        container or content.rootFolder, [vimtype], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def find(si, vimtype, name):
    for o in find_all(si, vimtype):
        if o.name == name:
            return o
    return None


def dc(si):
    return find(si, vim.Datacenter, "DC0")


def cluster(si):
    return find(si, vim.ClusterComputeResource, "Cluster0")


def root_pool(si):
    return cluster(si).resourcePool


def vm_folder(si):
    return dc(si).vmFolder


def datastore(si, name=DS):
    return find(si, vim.Datastore, name)


def network(si, name=VM_NETWORK):
    return find(si, vim.Network, name)


def dvs(si):
    return find(si, vim.DistributedVirtualSwitch, DVS)


def dvpg(si, name=DPG):
    return find(si, vim.dvs.DistributedVirtualPortgroup, name)


def hosts(si):
    return cluster(si).host


def vm_by_name(si, name):
    return si.content.searchIndex.FindByInventoryPath(f"DC0/vm/{name}")


# --- tasks ---------------------------------------------------------------------------

def wait(task):
    """Waits for a task (pyVim.task.WaitForTask, i.e. legacy WaitForUpdates) and returns
    its result; a failed task raises its fault."""
    WaitForTask(task)
    return task.info.result


def task_fault(task):
    """Waits for a task expected to fail and returns the raised fault."""
    with pytest.raises(vmodl.MethodFault) as ei:
        WaitForTask(task)
    return ei.value


def cannot_run(reason):
    """A test that cannot run here: skipped on a developer's machine, a failure in CI
    (CI=true), where a skip would let a green run hide that nothing was tested."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run under CI=true: {reason}")
    pytest.skip(reason)


def poll(pred, timeout=5.0, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)  # allow-sleep: poll interval of a deadline loop
    return pred()


# --- property collector --------------------------------------------------------------

def props(si, obj, paths):
    """RetrievePropertiesEx of `paths` on one object -> {name: value}."""
    pc = si.content.propertyCollector
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(
            type=type(obj), pathSet=list(paths))])
    res = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
    if res is None:
        return {}
    assert len(res.objects) == 1
    return {p.name: p.val for p in res.objects[0].propSet}


def extra_config(vm):
    return {o.key: o.value for o in vm.config.extraConfig}


# --- VM specs ------------------------------------------------------------------------

def opt(key, value):
    return vim.option.OptionValue(key=key, value=value)


def pvscsi_spec(key=-100, bus=0):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.ParaVirtualSCSIController(
            key=key, busNumber=bus, sharedBus="noSharing"))


def disk_spec(controller_key=-100, key=-200, capacity_kb=1024, unit=0, file_name=""):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        fileOperation="create",
        device=vim.vm.device.VirtualDisk(
            key=key,
            controllerKey=controller_key,
            unitNumber=unit,
            capacityInKB=capacity_kb,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=file_name, diskMode="persistent", thinProvisioned=True)))


def _connectable():
    return vim.vm.device.VirtualDevice.ConnectInfo(
        startConnected=True, allowGuestControl=True, connected=False)


def nic_spec(net, key=-300):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualVmxnet3(
            key=key,
            addressType="generated",
            connectable=_connectable(),
            backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
                deviceName=net.name, network=net)))


def dvs_nic_spec(switch, pg, key=-301):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualVmxnet3(
            key=key,
            addressType="generated",
            connectable=_connectable(),
            backing=vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
                port=vim.dvs.PortConnection(switchUuid=switch.uuid, portgroupKey=pg.key))))


def serial_uri_spec(key=-400, uri="tcp://127.0.0.1:2377"):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualSerialPort(
            key=key,
            yieldOnPoll=True,
            backing=vim.vm.device.VirtualSerialPort.URIBackingInfo(
                serviceURI=uri, direction="client")))


def serial_file_spec(file_name, key=-401):
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualSerialPort(
            key=key,
            yieldOnPoll=True,
            backing=vim.vm.device.VirtualSerialPort.FileBackingInfo(fileName=file_name)))


def vm_config_spec(name, devices=(), extra=None, ds=DS, **kw):
    fields = dict(
        name=name,
        guestId="otherGuest64",
        numCPUs=1,
        memoryMB=128,
        files=vim.vm.FileInfo(vmPathName=f"[{ds}]"),
        deviceChange=list(devices),
        extraConfig=[opt(k, v) for k, v in (extra or {}).items()])
    fields.update(kw)
    return vim.vm.ConfigSpec(**fields)


def create_vm(si, name, devices=(), extra=None, folder=None, pool=None, **kw):
    folder = folder or vm_folder(si)
    pool = pool or root_pool(si)
    task = folder.CreateVM_Task(config=vm_config_spec(name, devices, extra, **kw), pool=pool)
    return wait(task)


def full_devices(si, name):
    """The device set of a typical container VM: PVSCSI + thin disk, a NIC on the
    standard port group, a NIC on the DVS port group, a TCP serial port and a file
    serial port."""
    switch = dvs(si)
    return [
        pvscsi_spec(),
        disk_spec(),
        nic_spec(network(si)),
        dvs_nic_spec(switch, dvpg(si)),
        serial_uri_spec(),
        serial_file_spec(f"[{DS}] {name}/container.log"),
    ]


def create_full_vm(si, name, extra=None):
    return create_vm(si, name, devices=full_devices(si, name), extra=extra)


def devices_of(vm, cls):
    return [d for d in vm.config.hardware.device if isinstance(d, cls)]


def reconfig(vm, **kw):
    return wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(**kw)))


def power_on(vm):
    wait(vm.PowerOnVM_Task())


def power_off(vm):
    wait(vm.PowerOffVM_Task())


# --- datastore files -----------------------------------------------------------------

def ds_local(si, ds_path):
    """Local file behind `[ds] rel/path` (the datastore's reported backing directory)."""
    assert ds_path.startswith("[")
    ds_name, rel = ds_path[1:].split("]", 1)
    root = Path(datastore(si, ds_name).info.path)
    return root / rel.strip()


def cookie(si):
    return si._stub.cookie


def folder_url(sim, path, ds=DS, dc_path="DC0"):
    q = urllib.parse.urlencode({"dcPath": dc_path, "dsName": ds})
    return f"https://{sim.host}:{sim.port}/folder/{urllib.parse.quote(path)}?{q}"


def http(method, url, si=None, headers=None, **kw):
    h = dict(headers or {})
    if si is not None:
        h["Cookie"] = cookie(si)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return requests.request(method, url, headers=h, verify=False, timeout=30, **kw)


def unverified_context():
    return ssl._create_unverified_context()


def random_bytes(n):
    return os.urandom(n)
