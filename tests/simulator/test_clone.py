"""Full clones, snapshots, linked clones and instant clones."""

import re

import pytest
from pyVmomi import vim, vmodl

import helpers
from helpers import DS, devices_of, extra_config, opt, task_fault, wait

Dev = vim.vm.device


def clone(vm, name, folder=None, **spec_kw):
    folder = folder or vm.parent
    spec = vim.vm.CloneSpec(location=spec_kw.pop("location", vim.vm.RelocateSpec()),
                            powerOn=spec_kw.pop("powerOn", False), template=False,
                            **spec_kw)
    return wait(vm.CloneVM_Task(folder=folder, name=name, spec=spec))


def snapshot(vm, name="snap1"):
    return wait(vm.CreateSnapshot_Task(name=name, description="d", memory=False,
                                       quiesce=False))


def linked_clone(vm, snap, name):
    return clone(vm, name, snapshot=snap, location=vim.vm.RelocateSpec(
        diskMoveType="createNewChildDiskBacking"))


def disk(vm):
    return devices_of(vm, Dev.VirtualDisk)[0]


def macs(vm):
    return sorted(n.macAddress for n in devices_of(vm, Dev.VirtualEthernetCard))


# --- full clone -----------------------------------------------------------------------

def test_full_clone_creates_vm_with_new_uuids(si):
    src = helpers.create_full_vm(si, "src1")
    c = clone(src, "clone1")
    assert isinstance(c, vim.VirtualMachine)
    assert c.name == "clone1"
    assert c.config.uuid != src.config.uuid
    assert c.config.instanceUuid != src.config.instanceUuid


def test_full_clone_gets_new_mac_addresses(si):
    src = helpers.create_full_vm(si, "src2")
    c = clone(src, "clone2")
    assert len(macs(c)) == 2
    assert not set(macs(c)) & set(macs(src))
    assert all(re.match(r"^00:50:56:", m) for m in macs(c))


def test_full_clone_copies_disk_into_clone_directory(si):
    src = helpers.create_full_vm(si, "src3")
    c = clone(src, "clone3")
    fn = disk(c).backing.fileName
    assert fn == f"[{DS}] clone3/clone3.vmdk"
    assert helpers.ds_local(si, fn).is_file()
    assert disk(c).backing.parent is None
    # the source disk is untouched
    assert disk(src).backing.fileName == f"[{DS}] src3/src3.vmdk"
    assert helpers.ds_local(si, disk(src).backing.fileName).is_file()


def test_full_clone_copies_flat_extent_contents(si):
    src = helpers.create_full_vm(si, "src3b")
    src_flat = helpers.ds_local(si, f"[{DS}] src3b/src3b-flat.vmdk")
    with open(src_flat, "r+b") as f:
        f.write(b"payload-from-source")
    clone(src, "clone3b")
    dst_flat = helpers.ds_local(si, f"[{DS}] clone3b/clone3b-flat.vmdk")
    assert dst_flat.read_bytes()[:19] == b"payload-from-source"


def test_full_clone_keeps_devices_and_extra_config(si):
    src = helpers.create_full_vm(si, "src4", extra={"vch.id": "42"})
    c = clone(src, "clone4")
    assert extra_config(c)["vch.id"] == "42"
    src_types = sorted(type(d).__name__ for d in src.config.hardware.device)
    assert sorted(type(d).__name__ for d in c.config.hardware.device) == src_types
    assert set(c.network) == set(src.network)


def test_full_clone_is_powered_off_by_default(si):
    src = helpers.create_vm(si, "src5")
    helpers.power_on(src)
    c = clone(src, "clone5")
    assert c.runtime.powerState == "poweredOff"
    assert src.runtime.powerState == "poweredOn"


def test_clone_with_power_on(si):
    src = helpers.create_vm(si, "src6")
    c = clone(src, "clone6", powerOn=True)
    assert c.runtime.powerState == "poweredOn"


def test_clone_applies_config_spec(si):
    src = helpers.create_vm(si, "src7")
    c = clone(src, "clone7", config=vim.vm.ConfigSpec(numCPUs=2,
                                                    extraConfig=[opt("from.clone", "y")]))
    assert c.config.hardware.numCPU == 2
    assert extra_config(c)["from.clone"] == "y"
    assert src.config.hardware.numCPU == 1


def test_clone_into_other_folder(si):
    src = helpers.create_vm(si, "src8")
    sub = helpers.vm_folder(si).CreateFolder("clones")
    c = clone(src, "clone8", folder=sub)
    assert c.parent == sub
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/clones/clone8") == c


def test_clone_duplicate_name_raises_duplicate_name(si):
    src = helpers.create_vm(si, "src9")
    helpers.create_vm(si, "taken")
    with pytest.raises(vim.fault.DuplicateName):
        clone(src, "taken")


def test_destroying_full_clone_keeps_source_disk(si):
    src = helpers.create_full_vm(si, "src10")
    c = clone(src, "clone10")
    wait(c.Destroy_Task())
    assert helpers.ds_local(si, disk(src).backing.fileName).is_file()


# --- snapshots ------------------------------------------------------------------------

def test_create_snapshot_sets_current_snapshot(si):
    vm = helpers.create_full_vm(si, "snapvm")
    snap = snapshot(vm, "s1")
    assert isinstance(snap, vim.vm.Snapshot)
    assert vm.snapshot.currentSnapshot == snap
    tree = vm.snapshot.rootSnapshotList
    assert [t.name for t in tree] == ["s1"]
    assert tree[0].snapshot == snap
    assert tree[0].vm == vm
    assert vm.rootSnapshot == [snap]


def test_second_snapshot_is_child_of_first(si):
    vm = helpers.create_vm(si, "snapvm2")
    s1 = snapshot(vm, "s1")
    s2 = snapshot(vm, "s2")
    tree = vm.snapshot.rootSnapshotList
    assert tree[0].snapshot == s1
    assert [c.snapshot for c in tree[0].childSnapshotList] == [s2]
    assert vm.snapshot.currentSnapshot == s2
    assert s1.childSnapshot == [s2]


def test_snapshot_config_is_frozen(si):
    vm = helpers.create_vm(si, "snapvm3", extra={"k": "before"})
    snap = snapshot(vm)
    helpers.reconfig(vm, extraConfig=[opt("k", "after")])
    assert {o.key: o.value for o in snap.config.extraConfig}["k"] == "before"
    assert extra_config(vm)["k"] == "after"


# --- linked clone ---------------------------------------------------------------------

def test_linked_clone_disk_has_parent_backing_on_source_disk(si):
    src = helpers.create_full_vm(si, "lsrc1")
    snap = snapshot(src)
    c = linked_clone(src, snap, "linked1")
    d = disk(c)
    assert d.backing.fileName.startswith(f"[{DS}] linked1/")
    assert d.backing.parent is not None
    assert d.backing.parent.fileName == f"[{DS}] lsrc1/lsrc1.vmdk"
    assert helpers.ds_local(si, d.backing.fileName).is_file()


def test_linked_clone_without_snapshot_raises_invalid_argument(si):
    src = helpers.create_full_vm(si, "lsrc2")
    with pytest.raises(vmodl.fault.InvalidArgument):
        clone(src, "linked2", location=vim.vm.RelocateSpec(
            diskMoveType="createNewChildDiskBacking"))
    assert helpers.vm_by_name(si, "linked2") is None


def test_destroying_linked_clone_keeps_parent_disk(si):
    src = helpers.create_full_vm(si, "lsrc3")
    snap = snapshot(src)
    c = linked_clone(src, snap, "linked3")
    wait(c.Destroy_Task())
    assert helpers.ds_local(si, f"[{DS}] lsrc3/lsrc3.vmdk").is_file()
    assert helpers.ds_local(si, f"[{DS}] lsrc3/lsrc3-flat.vmdk").is_file()


def test_linked_clone_uses_snapshot_devices(si):
    src = helpers.create_full_vm(si, "lsrc4")
    snap = snapshot(src)
    # a NIC added after the snapshot is not part of the linked clone
    helpers.reconfig(src, deviceChange=[helpers.nic_spec(helpers.network(si), key=-5)])
    c = linked_clone(src, snap, "linked4")
    assert len(devices_of(c, Dev.VirtualEthernetCard)) == 2
    assert len(devices_of(src, Dev.VirtualEthernetCard)) == 3


# --- instant clone --------------------------------------------------------------------

def instant_clone(src, name, si, extra=None):
    spec = vim.vm.InstantCloneSpec(
        name=name,
        location=vim.vm.RelocateSpec(folder=helpers.vm_folder(si), pool=helpers.root_pool(si)),
        config=[opt(k, v) for k, v in (extra or {"guestinfo.vch.id": "abc"}).items()])
    return src.InstantClone_Task(spec=spec)


def test_instant_clone_of_running_vm_is_powered_on(si):
    src = helpers.create_full_vm(si, "isrc1")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild1", si))
    assert isinstance(child, vim.VirtualMachine)
    assert child.name == "ichild1"
    assert child.runtime.powerState == "poweredOn"
    assert child.runtime.bootTime is not None


def test_instant_clone_config_lands_in_extra_config(si):
    src = helpers.create_full_vm(si, "isrc2")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild2", si))
    assert extra_config(child)["guestinfo.vch.id"] == "abc"
    assert "guestinfo.vch.id" not in extra_config(src)


def test_instant_clone_placed_in_requested_folder_and_pool(si):
    src = helpers.create_vm(si, "isrc3")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild3", si))
    assert child.parent == helpers.vm_folder(si)
    assert child.resourcePool == helpers.root_pool(si)
    assert child.runtime.host == src.runtime.host


def test_instant_clone_gets_new_identity(si):
    src = helpers.create_full_vm(si, "isrc4")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild4", si))
    assert child.config.uuid != src.config.uuid
    assert child.config.instanceUuid != src.config.instanceUuid
    assert not set(macs(child)) & set(macs(src))


def test_instant_clone_disk_is_child_of_source_disk(si):
    src = helpers.create_full_vm(si, "isrc5")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild5", si))
    d = disk(child)
    assert d.backing.parent is not None
    assert d.backing.parent.fileName == disk(src).backing.fileName


def test_instant_clone_of_powered_off_vm_raises_invalid_power_state(si):
    src = helpers.create_vm(si, "isrc6")
    fault = task_fault(instant_clone(src, "ichild6", si))
    assert isinstance(fault, vim.fault.InvalidPowerState)
    assert helpers.vm_by_name(si, "ichild6") is None


def test_instant_clone_duplicate_name_raises_duplicate_name(si):
    src = helpers.create_vm(si, "isrc7")
    helpers.power_on(src)
    wait(instant_clone(src, "ichild7", si))
    fault = task_fault(instant_clone(src, "ichild7", si))
    assert isinstance(fault, vim.fault.DuplicateName)


def test_instant_clone_child_can_be_powered_off_and_destroyed(si):
    src = helpers.create_full_vm(si, "isrc8")
    helpers.power_on(src)
    child = wait(instant_clone(src, "ichild8", si))
    helpers.power_off(child)
    wait(child.Destroy_Task())
    assert helpers.vm_by_name(si, "ichild8") is None
    assert helpers.ds_local(si, disk(src).backing.fileName).is_file()
    assert src.runtime.powerState == "poweredOn"
