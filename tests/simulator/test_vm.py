"""Virtual machines: create with devices, reconfigure, power, guestinfo volatility,
destroy."""

import datetime
import re
import time

import pytest
from pyVmomi import vim, vmodl

import helpers
from helpers import DS, devices_of, extra_config, opt, task_fault, wait

MAC_RE = re.compile(r"^00:50:56:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$", re.I)
Dev = vim.vm.device


def nic_by_backing(vm, backing_cls):
    return [d for d in devices_of(vm, Dev.VirtualEthernetCard)
            if isinstance(d.backing, backing_cls)]


# --- create ---------------------------------------------------------------------------

def test_create_vm_places_vmx_in_directory_named_after_vm(si):
    vm = helpers.create_vm(si, "plain")
    assert vm.config.files.vmPathName == f"[{DS}] plain/plain.vmx"
    assert vm.summary.config.vmPathName == f"[{DS}] plain/plain.vmx"
    assert helpers.ds_local(si, f"[{DS}] plain/plain.vmx").is_file()


def test_create_vm_basic_config_reads_back(si):
    vm = helpers.create_vm(si, "basic", numCPUs=2, memoryMB=256, annotation="hello")
    assert vm.name == "basic"
    assert vm.config.hardware.numCPU == 2
    assert vm.config.hardware.memoryMB == 256
    assert vm.config.annotation == "hello"
    assert vm.config.guestId == "otherGuest64"
    assert vm.runtime.powerState == "poweredOff"
    assert vm.parent == helpers.vm_folder(si)
    assert vm.resourcePool == helpers.root_pool(si)
    assert vm.datastore == [helpers.datastore(si)]
    assert vm.runtime.host in helpers.hosts(si)


def test_create_vm_vmx_visible_in_datastore_browser(si):
    helpers.create_vm(si, "browse", devices=helpers.full_devices(si, "browse"))
    ds = helpers.datastore(si)
    task = ds.browser.SearchDatastore_Task(
        f"[{DS}] browse", vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"]))
    res = wait(task)
    assert res.folderPath.rstrip("/") in (f"[{DS}] browse", f"[{DS}]browse")
    files = {f.path: f for f in res.file}
    assert "browse.vmx" in files
    assert isinstance(files["browse.vmx"], vim.host.DatastoreBrowser.VmConfigInfo) or \
        isinstance(files["browse.vmx"], vim.host.DatastoreBrowser.FileInfo)
    assert "browse.vmdk" in files


def test_create_vm_vmx_downloadable_over_datastore_http(si, sim):
    vm = helpers.create_vm(si, "dl")
    r = helpers.http("GET", helpers.folder_url(sim, "dl/dl.vmx"), si=si)
    assert r.status_code == 200
    text = r.text
    assert 'displayName = "dl"' in text
    assert vm.config.uuid in text


def test_create_vm_with_devices_assigns_keys(si):
    vm = helpers.create_full_vm(si, "keys")
    disks = devices_of(vm, Dev.VirtualDisk)
    nics = devices_of(vm, Dev.VirtualEthernetCard)
    serials = devices_of(vm, Dev.VirtualSerialPort)
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)
    assert [d.key for d in disks] == [2000]
    assert sorted(n.key for n in nics) == [4000, 4001]
    assert sorted(s.key for s in serials) == [9000, 9001]
    assert len(scsi) == 1 and scsi[0].key >= 1000
    keys = [d.key for d in vm.config.hardware.device]
    assert len(keys) == len(set(keys))
    assert all(k >= 0 for k in keys)


def test_create_vm_disk_attached_to_new_pvscsi_controller(si):
    vm = helpers.create_full_vm(si, "ctl")
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)[0]
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    assert disk.controllerKey == scsi.key
    assert disk.unitNumber == 0


def test_controller_device_list_names_attached_disk(si):
    # VirtualController.device lists the keys of the devices on the controller.
    vm = helpers.create_full_vm(si, "ctldev")
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)[0]
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    assert list(scsi.device) == [disk.key]


def test_create_vm_disk_file_named_after_vm(si):
    vm = helpers.create_full_vm(si, "dname")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    assert isinstance(disk.backing, Dev.VirtualDisk.FlatVer2BackingInfo)
    assert disk.backing.fileName == f"[{DS}] dname/dname.vmdk"
    assert disk.backing.thinProvisioned is True
    assert disk.capacityInKB == 1024
    assert helpers.ds_local(si, f"[{DS}] dname/dname.vmdk").is_file()


def test_create_vm_nics_get_vmware_mac_addresses(si):
    vm = helpers.create_full_vm(si, "macs")
    macs = [n.macAddress for n in devices_of(vm, Dev.VirtualEthernetCard)]
    assert len(macs) == 2
    assert all(MAC_RE.match(m) for m in macs), macs
    assert macs[0] != macs[1]


def test_create_vm_nic_backings(si):
    vm = helpers.create_full_vm(si, "backings")
    std = nic_by_backing(vm, Dev.VirtualEthernetCard.NetworkBackingInfo)
    dv = nic_by_backing(vm, Dev.VirtualEthernetCard.DistributedVirtualPortBackingInfo)
    assert len(std) == 1 and len(dv) == 1
    assert std[0].backing.network == helpers.network(si)
    assert std[0].backing.deviceName == "VM Network"
    switch, pg = helpers.dvs(si), helpers.dvpg(si)
    assert dv[0].backing.port.switchUuid == switch.uuid
    assert dv[0].backing.port.portgroupKey == pg.key


def test_create_vm_network_property_lists_both_networks(si):
    vm = helpers.create_full_vm(si, "nets")
    nets = set(vm.network)
    assert nets == {helpers.network(si), helpers.dvpg(si)}


def test_network_vm_property_lists_attached_vm(si):
    vm = helpers.create_full_vm(si, "netvm")
    assert vm in helpers.network(si).vm
    assert vm in helpers.dvpg(si).vm


def test_create_vm_serial_port_backings(si):
    vm = helpers.create_full_vm(si, "serial")
    serials = sorted(devices_of(vm, Dev.VirtualSerialPort), key=lambda d: d.key)
    uri = [s for s in serials if isinstance(s.backing, Dev.VirtualSerialPort.URIBackingInfo)]
    fil = [s for s in serials if isinstance(s.backing, Dev.VirtualSerialPort.FileBackingInfo)]
    assert len(uri) == 1 and len(fil) == 1
    assert uri[0].backing.serviceURI == "tcp://127.0.0.1:2377"
    assert uri[0].backing.direction == "client"
    assert fil[0].backing.fileName == f"[{DS}] serial/container.log"


def test_create_vm_summary_counts_devices(si):
    vm = helpers.create_full_vm(si, "summary")
    assert vm.summary.config.numEthernetCards == 2
    assert vm.summary.config.numVirtualDisks == 1


def test_create_vm_extra_config_reads_back(si):
    vm = helpers.create_vm(si, "ec", extra={"a.b": "1", "guestinfo.x": "y"})
    ec = extra_config(vm)
    assert ec["a.b"] == "1"
    assert ec["guestinfo.x"] == "y"


def test_create_vm_gets_distinct_bios_and_instance_uuids(si):
    a = helpers.create_vm(si, "u1")
    b = helpers.create_vm(si, "u2")
    uuids = {a.config.uuid, a.config.instanceUuid, b.config.uuid, b.config.instanceUuid}
    assert len(uuids) == 4


def test_create_vm_duplicate_name_raises_duplicate_name(si):
    helpers.create_vm(si, "dupvm")
    task = helpers.vm_folder(si).CreateVM_Task(
        config=helpers.vm_config_spec("dupvm"), pool=helpers.root_pool(si))
    fault = task_fault(task)
    assert isinstance(fault, vim.fault.DuplicateName)
    assert fault.name == "dupvm"


def test_create_vm_same_name_in_other_folder_is_allowed(si):
    helpers.create_vm(si, "samename")
    sub = helpers.vm_folder(si).CreateFolder("other")
    vm = helpers.create_vm(si, "samename", folder=sub)
    assert vm.parent == sub
    # and it gets its own directory
    assert vm.config.files.vmPathName != f"[{DS}] samename/samename.vmx"


def test_create_vm_on_unknown_datastore_raises_invalid_datastore(si):
    folder, pool = helpers.vm_folder(si), helpers.root_pool(si)
    with pytest.raises(vim.fault.InvalidDatastore):
        wait(folder.CreateVM_Task(config=helpers.vm_config_spec("nods", ds="nope"), pool=pool))
    assert helpers.vm_by_name(si, "nods") is None


def test_create_vm_disk_on_missing_controller_raises_invalid_device_spec(si):
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        helpers.create_vm(si, "noctl", devices=[helpers.disk_spec(controller_key=-999)])
    assert helpers.vm_by_name(si, "noctl") is None
    assert not helpers.ds_local(si, f"[{DS}] noctl").exists()


def test_create_vm_nic_on_unknown_network_raises(si):
    ghost = vim.Network("network-98765", si._stub)
    spec = helpers.nic_spec(helpers.network(si))
    spec.device.backing.network = ghost
    with pytest.raises(vmodl.MethodFault):
        helpers.create_vm(si, "badnet", devices=[spec])
    assert helpers.vm_by_name(si, "badnet") is None


def test_create_vm_in_host_folder_is_refused(si):
    host_folder = helpers.dc(si).hostFolder
    with pytest.raises(vmodl.MethodFault):
        wait(host_folder.CreateVM_Task(config=helpers.vm_config_spec("wrongfolder"),
                                       pool=helpers.root_pool(si)))


# --- reconfigure ---------------------------------------------------------------------

def test_reconfig_adds_extra_config_key(si):
    vm = helpers.create_vm(si, "r1")
    helpers.reconfig(vm, extraConfig=[opt("foo.bar", "1")])
    assert extra_config(vm)["foo.bar"] == "1"


def test_reconfig_changes_extra_config_key(si):
    vm = helpers.create_vm(si, "r2", extra={"foo.bar": "1"})
    helpers.reconfig(vm, extraConfig=[opt("foo.bar", "2")])
    assert extra_config(vm)["foo.bar"] == "2"


def test_reconfig_empty_value_removes_extra_config_key(si):
    vm = helpers.create_vm(si, "r3", extra={"foo.bar": "1", "keep.me": "x"})
    helpers.reconfig(vm, extraConfig=[opt("foo.bar", "")])
    ec = extra_config(vm)
    assert "foo.bar" not in ec
    assert ec["keep.me"] == "x"


def test_reconfig_extra_config_written_to_vmx(si, sim):
    vm = helpers.create_vm(si, "r3v")
    helpers.reconfig(vm, extraConfig=[opt("foo.vmx", "in-file")])
    text = helpers.ds_local(si, vm.config.files.vmPathName).read_text()
    assert 'foo.vmx = "in-file"' in text


def test_reconfig_changes_cpu_and_memory(si):
    vm = helpers.create_vm(si, "r4")
    helpers.reconfig(vm, numCPUs=4, memoryMB=512)
    assert vm.config.hardware.numCPU == 4
    assert vm.config.hardware.memoryMB == 512


def test_reconfig_bumps_change_version(si):
    vm = helpers.create_vm(si, "r4c")
    before = vm.config.changeVersion
    helpers.reconfig(vm, annotation="x")
    assert vm.config.changeVersion != before


def test_reconfig_renames_vm(si):
    vm = helpers.create_vm(si, "r5")
    helpers.reconfig(vm, name="r5-renamed")
    assert vm.name == "r5-renamed"


def test_reconfig_rename_to_existing_sibling_raises_duplicate_name(si):
    helpers.create_vm(si, "r6a")
    vm = helpers.create_vm(si, "r6b")
    with pytest.raises(vim.fault.DuplicateName):
        helpers.reconfig(vm, name="r6a")
    assert vm.name == "r6b"


def test_reconfig_edit_serial_port_uri(si):
    vm = helpers.create_full_vm(si, "r7")
    port = [s for s in devices_of(vm, Dev.VirtualSerialPort)
            if isinstance(s.backing, Dev.VirtualSerialPort.URIBackingInfo)][0]
    port.backing.serviceURI = "tcp://127.0.0.1:9999"
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="edit", device=port)])
    again = [s for s in devices_of(vm, Dev.VirtualSerialPort) if s.key == port.key][0]
    assert again.backing.serviceURI == "tcp://127.0.0.1:9999"
    assert again.backing.direction == "client"


def test_reconfig_edit_disk_capacity(si):
    vm = helpers.create_full_vm(si, "r8")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    disk.capacityInKB = 4096
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="edit", device=disk)])
    assert devices_of(vm, Dev.VirtualDisk)[0].capacityInKB == 4096


def test_reconfig_edit_nic_keeps_mac(si):
    vm = helpers.create_full_vm(si, "r8n")
    nic = nic_by_backing(vm, Dev.VirtualEthernetCard.NetworkBackingInfo)[0]
    mac = nic.macAddress
    nic.connectable.startConnected = False
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="edit", device=nic)])
    again = [d for d in devices_of(vm, Dev.VirtualEthernetCard) if d.key == nic.key][0]
    assert again.macAddress == mac
    assert again.connectable.startConnected is False


def test_reconfig_add_second_disk_gets_next_key_and_file(si):
    vm = helpers.create_full_vm(si, "r9")
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)[0]
    helpers.reconfig(vm, deviceChange=[helpers.disk_spec(controller_key=scsi.key, unit=1)])
    disks = sorted(devices_of(vm, Dev.VirtualDisk), key=lambda d: d.key)
    assert [d.key for d in disks] == [2000, 2001]
    assert disks[1].backing.fileName == f"[{DS}] r9/r9_1.vmdk"
    assert helpers.ds_local(si, f"[{DS}] r9/r9_1.vmdk").is_file()


def test_reconfig_remove_disk_with_destroy_deletes_vmdk(si):
    vm = helpers.create_full_vm(si, "r10")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    local = helpers.ds_local(si, disk.backing.fileName)
    assert local.is_file()
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(
        operation="remove", fileOperation="destroy", device=disk)])
    assert devices_of(vm, Dev.VirtualDisk) == []
    assert not local.exists()
    # the flat extent goes too
    assert not local.with_name("r10-flat.vmdk").exists()


def test_reconfig_remove_disk_without_file_operation_keeps_vmdk(si):
    vm = helpers.create_full_vm(si, "r11")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    local = helpers.ds_local(si, disk.backing.fileName)
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="remove", device=disk)])
    assert devices_of(vm, Dev.VirtualDisk) == []
    assert local.is_file()


def test_reconfig_remove_nic(si):
    vm = helpers.create_full_vm(si, "r12")
    nic = nic_by_backing(vm, Dev.VirtualEthernetCard.DistributedVirtualPortBackingInfo)[0]
    helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="remove", device=nic)])
    assert [d.key for d in devices_of(vm, Dev.VirtualEthernetCard)] != []
    assert nic.key not in [d.key for d in vm.config.hardware.device]
    assert set(vm.network) == {helpers.network(si)}


def test_reconfig_remove_nonexistent_device_raises_invalid_device_spec(si):
    vm = helpers.create_full_vm(si, "r13")
    ghost = Dev.VirtualVmxnet3(key=4999)
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="remove",
                                                                 device=ghost)])


def test_reconfig_failed_device_change_leaves_vm_unchanged(si):
    vm = helpers.create_full_vm(si, "r14")
    before = sorted(d.key for d in vm.config.hardware.device)
    ghost = Dev.VirtualVmxnet3(key=4999)
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        helpers.reconfig(vm, extraConfig=[opt("half.done", "1")], deviceChange=[
            Dev.VirtualDeviceSpec(operation="remove", device=ghost)])
    assert sorted(d.key for d in vm.config.hardware.device) == before
    assert "half.done" not in extra_config(vm)


def test_reconfig_add_nic_while_powered_on(si):
    vm = helpers.create_vm(si, "r15")
    helpers.power_on(vm)
    helpers.reconfig(vm, deviceChange=[helpers.nic_spec(helpers.network(si))])
    assert len(devices_of(vm, Dev.VirtualEthernetCard)) == 1


# --- power -------------------------------------------------------------------------

def test_power_on_sets_power_state_and_boot_time(si):
    vm = helpers.create_vm(si, "p1")
    assert vm.runtime.bootTime is None
    helpers.power_on(vm)
    assert vm.runtime.powerState == "poweredOn"
    assert isinstance(vm.runtime.bootTime, datetime.datetime)
    assert vm.summary.runtime.powerState == "poweredOn"


def test_power_on_twice_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "p2")
    helpers.power_on(vm)
    with pytest.raises(vim.fault.InvalidPowerState) as ei:
        wait(vm.PowerOnVM_Task())
    assert ei.value.existingState == "poweredOn"
    assert vm.runtime.powerState == "poweredOn"


def test_power_off(si):
    vm = helpers.create_vm(si, "p3")
    helpers.power_on(vm)
    helpers.power_off(vm)
    assert vm.runtime.powerState == "poweredOff"
    assert vm.runtime.bootTime is None


def test_power_off_when_off_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "p4")
    with pytest.raises(vim.fault.InvalidPowerState) as ei:
        wait(vm.PowerOffVM_Task())
    assert ei.value.existingState == "poweredOff"


def test_shutdown_guest_powers_vm_off(si):
    vm = helpers.create_vm(si, "p5")
    helpers.power_on(vm)
    assert vm.ShutdownGuest() is None
    assert helpers.poll(lambda: vm.runtime.powerState == "poweredOff", timeout=5)


def test_shutdown_guest_when_off_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "p6")
    with pytest.raises(vim.fault.InvalidPowerState):
        vm.ShutdownGuest()


def test_reset_keeps_vm_on_and_renews_boot_time(si):
    vm = helpers.create_vm(si, "p7")
    helpers.power_on(vm)
    boot1 = vm.runtime.bootTime
    # allow-sleep: the new boot time must be later; the clock has to move on.
    time.sleep(0.01)
    wait(vm.ResetVM_Task())
    assert vm.runtime.powerState == "poweredOn"
    assert vm.runtime.bootTime > boot1


def test_reset_when_off_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "p8")
    with pytest.raises(vim.fault.InvalidPowerState):
        wait(vm.ResetVM_Task())


def test_suspend_sets_suspended(si):
    vm = helpers.create_vm(si, "p9")
    helpers.power_on(vm)
    wait(vm.SuspendVM_Task())
    assert vm.runtime.powerState == "suspended"


def test_power_on_suspended_vm_resumes(si):
    vm = helpers.create_vm(si, "p10")
    helpers.power_on(vm)
    wait(vm.SuspendVM_Task())
    helpers.power_on(vm)
    assert vm.runtime.powerState == "poweredOn"


def test_suspend_when_off_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "p11")
    with pytest.raises(vim.fault.InvalidPowerState):
        wait(vm.SuspendVM_Task())


def test_host_vm_property_lists_vm(si):
    vm = helpers.create_vm(si, "p12")
    assert vm in vm.runtime.host.vm


# --- destroy -------------------------------------------------------------------------

def test_destroy_powered_on_vm_raises_invalid_power_state(si):
    vm = helpers.create_vm(si, "d1")
    helpers.power_on(vm)
    with pytest.raises(vim.fault.InvalidPowerState):
        wait(vm.Destroy_Task())
    assert vm.name == "d1"
    assert helpers.vm_by_name(si, "d1") == vm


def test_destroy_powered_off_vm_removes_it_and_its_directory(si):
    vm = helpers.create_full_vm(si, "d2")
    vmdir = helpers.ds_local(si, f"[{DS}] d2")
    assert vmdir.is_dir()
    wait(vm.Destroy_Task())
    assert helpers.vm_by_name(si, "d2") is None
    assert not vmdir.exists()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        vm.name


def test_destroyed_vm_leaves_folder_pool_and_network(si):
    vm = helpers.create_full_vm(si, "d3")
    wait(vm.Destroy_Task())
    assert vm not in helpers.vm_folder(si).childEntity
    assert vm not in helpers.root_pool(si).vm
    assert vm not in helpers.network(si).vm


def test_destroy_vm_keeps_disk_attached_from_outside_its_directory_when_shared(si):
    # a disk created by VirtualDiskManager and attached to two VMs survives one destroy
    dc = helpers.dc(si)
    vdm = si.content.virtualDiskManager
    wait(vdm.CreateVirtualDisk_Task(f"[{DS}] shared.vmdk", dc,
                                    vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
                                        diskType="thin", adapterType="lsiLogic",
                                        capacityKb=1024)))

    def attach():
        spec = helpers.disk_spec(file_name=f"[{DS}] shared.vmdk")
        spec.fileOperation = None
        spec.device.backing.diskMode = "independent_nonpersistent"
        return [helpers.pvscsi_spec(), spec]

    a = helpers.create_vm(si, "sh-a", devices=attach())
    helpers.create_vm(si, "sh-b", devices=attach())
    wait(a.Destroy_Task())
    assert helpers.ds_local(si, f"[{DS}] shared.vmdk").is_file()


# --- guestinfo volatility ---------------------------------------------------------------

def test_guestinfo_set_while_on_is_visible_while_running(si):
    vm = helpers.create_vm(si, "g1")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.x", "hot")])
    assert extra_config(vm)["guestinfo.x"] == "hot"


def test_guestinfo_set_while_on_is_gone_after_power_off(si):
    vm = helpers.create_vm(si, "g2")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.x", "hot")])
    helpers.power_off(vm)
    assert "guestinfo.x" not in extra_config(vm)


def test_guestinfo_set_while_on_is_gone_after_shutdown_guest(si):
    vm = helpers.create_vm(si, "g2s")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.x", "hot")])
    vm.ShutdownGuest()
    assert helpers.poll(lambda: vm.runtime.powerState == "poweredOff")
    assert "guestinfo.x" not in extra_config(vm)


def test_guestinfo_set_while_off_persists_across_power_cycles(si):
    vm = helpers.create_vm(si, "g3")
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.x", "cold")])
    for _ in range(2):
        helpers.power_on(vm)
        assert extra_config(vm)["guestinfo.x"] == "cold"
        helpers.power_off(vm)
        assert extra_config(vm)["guestinfo.x"] == "cold"


def test_non_guestinfo_key_set_while_on_persists_after_power_off(si):
    vm = helpers.create_vm(si, "g4")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("vch.setting", "kept")])
    helpers.power_off(vm)
    assert extra_config(vm)["vch.setting"] == "kept"


def test_guestinfo_overwritten_while_on_reverts_to_persistent_value_after_power_off(si):
    vm = helpers.create_vm(si, "g5", extra={"guestinfo.x": "cold"})
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.x", "hot")])
    assert extra_config(vm)["guestinfo.x"] == "hot"
    helpers.power_off(vm)
    assert extra_config(vm)["guestinfo.x"] == "cold"


def test_guestinfo_set_while_on_is_not_written_to_vmx(si):
    vm = helpers.create_vm(si, "g6")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.volatile", "v")])
    text = helpers.ds_local(si, vm.config.files.vmPathName).read_text()
    assert "guestinfo.volatile" not in text


def test_guestinfo_key_selector_sees_volatile_value(si):
    vm = helpers.create_vm(si, "g7")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.a", "live")])
    got = helpers.props(si, vm, ['config.extraConfig["guestinfo.a"]'])
    assert got['config.extraConfig["guestinfo.a"]'].value == "live"


# --- names and values ---------------------------------------------------------------

def test_vm_name_and_extra_config_with_xml_special_characters_round_trip(si):
    name = 'a&b <c> "d" \u00e9'
    value = "<&>\"' \u00fc \u2603"
    vm = helpers.create_vm(si, name, extra={"k.x": value})
    assert vm.name == name
    assert extra_config(vm)["k.x"] == value


def test_vm_name_longer_than_80_characters_raises_invalid_name(si):
    with pytest.raises(vim.fault.InvalidName):
        helpers.create_vm(si, "n" * 81)


def test_vm_name_with_slash_is_reported_escaped(si):
    # ManagedEntity.name: '/' in a name is escaped as %2f (and '%' as %25).
    vm = helpers.create_vm(si, "x/y")
    assert vm.name.lower() == "x%2fy"


def test_vm_name_with_slash_does_not_nest_vmx_in_subdirectory(si):
    vm = helpers.create_vm(si, "p/q")
    path = vm.config.files.vmPathName
    assert re.fullmatch(r"\[datastore1\] [^/]+/[^/]+\.vmx", path), path


# --- device details scripts rely on ---------------------------------------------------

def test_device_labels_follow_vsphere_naming(si):
    # Admin scripts find devices by label ("Hard disk 1", "Network adapter 1", ...).
    vm = helpers.create_full_vm(si, "labels")
    labels = {type(d).__name__: [] for d in vm.config.hardware.device}
    for d in vm.config.hardware.device:
        labels[type(d).__name__].append(d.deviceInfo.label)
    assert labels["vim.vm.device.VirtualDisk"] == ["Hard disk 1"]
    assert sorted(labels["vim.vm.device.VirtualVmxnet3"]) == ["Network adapter 1",
                                                             "Network adapter 2"]
    assert sorted(labels["vim.vm.device.VirtualSerialPort"]) == ["Serial port 1",
                                                                "Serial port 2"]
    assert labels["vim.vm.device.ParaVirtualSCSIController"] == ["SCSI controller 0"]


def test_disk_backing_names_its_datastore(si):
    vm = helpers.create_full_vm(si, "dsref")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    assert disk.backing.datastore == helpers.datastore(si)


def test_disk_reports_capacity_in_bytes(si):
    vm = helpers.create_full_vm(si, "bytes")
    disk = devices_of(vm, Dev.VirtualDisk)[0]
    assert disk.capacityInBytes == 1024 * 1024


def test_remove_controller_with_attached_disk_raises_invalid_device_spec(si):
    vm = helpers.create_full_vm(si, "ctlrm")
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)[0]
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        helpers.reconfig(vm, deviceChange=[Dev.VirtualDeviceSpec(operation="remove",
                                                                 device=scsi)])
    assert devices_of(vm, Dev.ParaVirtualSCSIController)


def test_add_disk_create_onto_existing_file_raises_file_already_exists(si):
    vm = helpers.create_full_vm(si, "exists")
    scsi = devices_of(vm, Dev.ParaVirtualSCSIController)[0]
    with pytest.raises(vim.fault.FileAlreadyExists):
        helpers.reconfig(vm, deviceChange=[helpers.disk_spec(
            controller_key=scsi.key, unit=1, file_name=f"[{DS}] exists/exists.vmdk")])
    assert len(devices_of(vm, Dev.VirtualDisk)) == 1


# --- explicit vmx paths and shared directories -------------------------------------------

def test_create_vm_with_explicit_vmx_path(si):
    si.content.fileManager.MakeDirectory(f"[{DS}] custom", helpers.dc(si))
    vm = helpers.create_vm(si, "explicit", files=vim.vm.FileInfo(
        vmPathName=f"[{DS}] custom/explicit.vmx"))
    assert vm.config.files.vmPathName == f"[{DS}] custom/explicit.vmx"
    assert helpers.ds_local(si, f"[{DS}] custom/explicit.vmx").is_file()


def test_failed_create_vm_keeps_preexisting_directory_contents(si, sim):
    si.content.fileManager.MakeDirectory(f"[{DS}] keep", helpers.dc(si))
    r = helpers.http("PUT", helpers.folder_url(sim, "keep/important.txt"), si=si, data=b"!")
    assert r.status_code == 201
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        helpers.create_vm(si, "fails", files=vim.vm.FileInfo(
            vmPathName=f"[{DS}] keep/fails.vmx"),
            devices=[helpers.disk_spec(controller_key=-999)])
    assert helpers.ds_local(si, f"[{DS}] keep/important.txt").read_bytes() == b"!"


def test_destroy_vm_keeps_other_vm_files_in_shared_directory(si):
    si.content.fileManager.MakeDirectory(f"[{DS}] shared", helpers.dc(si))
    a = helpers.create_vm(si, "sa", files=vim.vm.FileInfo(vmPathName=f"[{DS}] shared/sa.vmx"))
    helpers.create_vm(si, "sb", files=vim.vm.FileInfo(vmPathName=f"[{DS}] shared/sb.vmx"))
    wait(a.Destroy_Task())
    assert helpers.ds_local(si, f"[{DS}] shared/sb.vmx").is_file()


# --- concurrency ---------------------------------------------------------------------------

def test_concurrent_power_on_tasks_only_one_succeeds(si):
    vm = helpers.create_vm(si, "race")
    t1, t2 = vm.PowerOnVM_Task(), vm.PowerOnVM_Task()
    results = []
    for t in (t1, t2):
        try:
            wait(t)
            results.append("ok")
        except vim.fault.InvalidPowerState:
            results.append("invalid")
    assert sorted(results) == ["invalid", "ok"]
    assert vm.runtime.powerState == "poweredOn"


def test_concurrent_create_vm_same_name_only_one_succeeds(si):
    folder, pool = helpers.vm_folder(si), helpers.root_pool(si)
    tasks = [folder.CreateVM_Task(config=helpers.vm_config_spec("samerace"), pool=pool)
             for _ in range(3)]
    outcomes = []
    for t in tasks:
        try:
            wait(t)
            outcomes.append("ok")
        except vim.fault.DuplicateName:
            outcomes.append("dup")
    assert sorted(outcomes) == ["dup", "dup", "ok"]
    assert len([v for v in helpers.find_all(si, vim.VirtualMachine)
                if v.name == "samerace"]) == 1


def test_unimplemented_vm_method_raises_method_not_found(si):
    vm = helpers.create_vm(si, "unimpl")
    # Not modelled: snapshots keep configuration, not disk contents (docs/simulator.md).
    with pytest.raises(vmodl.fault.MethodNotFound):
        vm.RevertToCurrentSnapshot_Task()


def test_create_vm_on_requested_host(si):
    h = helpers.hosts(si)[2]
    task = helpers.vm_folder(si).CreateVM_Task(config=helpers.vm_config_spec("onhost"),
                                               pool=helpers.root_pool(si), host=h)
    vm = wait(task)
    assert vm.runtime.host == h
    assert vm in h.vm


# --- templates --------------------------------------------------------------------------

def test_mark_as_template_and_back_as_govc_does(si):
    """govc vm.markastemplate / vm.markasvm: MarkAsTemplate, MarkAsVirtualMachine(pool, host)."""
    vm = helpers.create_vm(si, "tmpl")
    pool = helpers.root_pool(si)
    helpers.power_on(vm)
    with pytest.raises(vim.fault.InvalidPowerState):
        vm.MarkAsTemplate()
    helpers.power_off(vm)
    vm.MarkAsTemplate()
    assert vm.config.template is True and vm.summary.config.template is True
    assert vm.resourcePool is None, "a template belongs to no resource pool"
    assert vm not in pool.vm
    with pytest.raises(vmodl.fault.NotSupported):
        vm.MarkAsTemplate()
    fault = task_fault(vm.PowerOnVM_Task())
    assert isinstance(fault, vmodl.fault.NotSupported), fault
    host = helpers.hosts(si)[0]
    vm.MarkAsVirtualMachine(pool=pool, host=host)
    assert vm.config.template is False and vm.resourcePool == pool and vm in pool.vm
    assert vm.runtime.host == host
    with pytest.raises(vmodl.fault.NotSupported):
        vm.MarkAsVirtualMachine(pool=pool)
    helpers.power_on(vm)
    assert vm.runtime.powerState == "poweredOn"
    helpers.power_off(vm)


# --- relocate (vMotion) ---------------------------------------------------------------------

def test_relocate_moves_a_running_vm_between_hosts_without_restarting_it(si):
    """govc vm.migrate -host / -pool: RelocateVM_Task keeps the guest running."""
    vm = helpers.create_vm(si, "mover-vm")
    helpers.power_on(vm)
    boot = vm.runtime.bootTime
    hosts = helpers.hosts(si)
    if len(hosts) < 2:
        helpers.cannot_run("the default inventory has one host")
    target = next(h for h in hosts if h != vm.runtime.host)
    child = helpers.root_pool(si).CreateResourcePool("mover-pool", vim.ResourceConfigSpec(
        cpuAllocation=vim.ResourceAllocationInfo(limit=-1, reservation=0, expandableReservation=True,
                                                 shares=vim.SharesInfo(level="normal")),
        memoryAllocation=vim.ResourceAllocationInfo(limit=-1, reservation=0, expandableReservation=True,
                                                    shares=vim.SharesInfo(level="normal"))))
    wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=target, pool=child)))
    assert vm.runtime.host == target and vm.resourcePool == child and vm in child.vm
    assert vm.runtime.powerState == "poweredOn" and vm.runtime.bootTime == boot, "not restarted"
    other_ds = [d for d in helpers.find_all(si, vim.Datastore) if d != vm.datastore[0]]
    if other_ds:
        fault = task_fault(vm.RelocateVM_Task(vim.vm.RelocateSpec(datastore=other_ds[0])))
        assert isinstance(fault, vmodl.fault.NotSupported), fault
    helpers.power_off(vm)


# --- snapshots ------------------------------------------------------------------------------

def snapshot_names(vm):
    def walk(trees):
        for t in trees or []:
            yield t.name, [c.name for c in t.childSnapshotList]
            yield from walk(t.childSnapshotList)
    return dict(walk(vm.snapshot.rootSnapshotList)) if vm.snapshot else {}


def test_remove_snapshots_as_govc_snapshot_remove_does(si):
    vm = helpers.create_vm(si, "snappy")
    for name in ("s1", "s2", "s3"):
        wait(vm.CreateSnapshot_Task(name, "", False, False))
    assert snapshot_names(vm) == {"s1": ["s2"], "s2": ["s3"], "s3": []}
    s2 = next(t.snapshot for t in vm.snapshot.rootSnapshotList[0].childSnapshotList)
    # Without its children: s3 moves up to s1.
    wait(s2.RemoveSnapshot_Task(removeChildren=False))
    assert snapshot_names(vm) == {"s1": ["s3"], "s3": []}
    assert vm.snapshot.currentSnapshot is not None
    s1 = vm.snapshot.rootSnapshotList[0].snapshot
    wait(s1.RemoveSnapshot_Task(removeChildren=True))
    assert vm.snapshot is None and vm.rootSnapshot == []
    wait(vm.CreateSnapshot_Task("again", "", False, False))
    wait(vm.RemoveAllSnapshots_Task())
    assert vm.snapshot is None
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        wait(s1.RemoveSnapshot_Task(removeChildren=False))
