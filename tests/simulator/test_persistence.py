"""Persistence across restarts: SIGTERM (clean shutdown) and SIGKILL (crash)."""

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

import helpers
from helpers import DS, devices_of, extra_config, opt, wait

Dev = vim.vm.device


def build_world(si):
    """A pool, a folder, and a VM in both with devices and extraConfig, powered on."""
    root = helpers.root_pool(si)
    alloc = vim.ResourceAllocationInfo(reservation=0, limit=2048, expandableReservation=True,
                                       shares=vim.SharesInfo(level="normal", shares=4000))
    pool = root.CreateResourcePool("persist-pool", vim.ResourceConfigSpec(
        cpuAllocation=alloc, memoryAllocation=alloc))
    folder = helpers.vm_folder(si).CreateFolder("persist-folder")
    vm = helpers.create_vm(si, "pvm", devices=helpers.full_devices(si, "pvm"),
                           extra={"vch.persist": "yes", "guestinfo.cold": "c"},
                           folder=folder, pool=pool)
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.hot", "h"), opt("vch.later", "l")])
    return vm


def snapshot_state(vm):
    return {
        "uuid": vm.config.uuid,
        "instanceUuid": vm.config.instanceUuid,
        "devices": sorted((type(d).__name__, d.key) for d in vm.config.hardware.device),
        "macs": sorted(n.macAddress for n in devices_of(vm, Dev.VirtualEthernetCard)),
        "disk": devices_of(vm, Dev.VirtualDisk)[0].backing.fileName,
        "vmx": vm.config.files.vmPathName,
    }


def restart(sim, kill):
    sim.stop(kill=kill)
    sim.start()
    return sim.connect()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_pool_folder_and_vm_survive_restart(sim, kill):
    si = sim.connect()
    build_world(si)
    si2 = restart(sim, kill)
    s = si2.content.searchIndex
    assert isinstance(s.FindByInventoryPath("DC0/host/Cluster0/Resources/persist-pool"),
                      vim.ResourcePool)
    assert isinstance(s.FindByInventoryPath("DC0/vm/persist-folder"), vim.Folder)
    vm = s.FindByInventoryPath("DC0/vm/persist-folder/pvm")
    assert isinstance(vm, vim.VirtualMachine)
    assert vm.resourcePool.name == "persist-pool"
    Disconnect(si2)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_vm_devices_and_identity_survive_restart(sim, kill):
    si = sim.connect()
    before = snapshot_state(build_world(si))
    si2 = restart(sim, kill)
    vm = si2.content.searchIndex.FindByInventoryPath("DC0/vm/persist-folder/pvm")
    assert snapshot_state(vm) == before
    assert helpers.ds_local(si2, before["disk"]).is_file()
    Disconnect(si2)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_non_volatile_extra_config_survives_restart(sim, kill):
    si = sim.connect()
    build_world(si)
    si2 = restart(sim, kill)
    vm = si2.content.searchIndex.FindByInventoryPath("DC0/vm/persist-folder/pvm")
    ec = extra_config(vm)
    assert ec["vch.persist"] == "yes"
    assert ec["vch.later"] == "l"
    assert ec["guestinfo.cold"] == "c"
    Disconnect(si2)


@pytest.fixture
def state_sim(sim_factory):
    """A simulator whose VMs only change state: like vCenter over ESXi hosts, its VMs
    keep running across a restart of the simulator."""
    return sim_factory(["--runtime", "state"])


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_power_state_survives_restart(state_sim, kill):
    sim = state_sim
    si = sim.connect()
    build_world(si)
    si2 = restart(sim, kill)
    vm = si2.content.searchIndex.FindByInventoryPath("DC0/vm/persist-folder/pvm")
    assert vm.runtime.powerState == "poweredOn"
    Disconnect(si2)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_pool_allocation_survives_restart(sim, kill):
    si = sim.connect()
    build_world(si)
    si2 = restart(sim, kill)
    pool = si2.content.searchIndex.FindByInventoryPath(
        "DC0/host/Cluster0/Resources/persist-pool")
    assert pool.config.memoryAllocation.limit == 2048
    Disconnect(si2)


def test_completed_task_change_survives_kill_9(sim):
    si = sim.connect()
    vm = helpers.create_vm(si, "k9")
    wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(
        extraConfig=[opt("after.task", "done")], numCPUs=3)))
    si2 = restart(sim, kill=True)
    vm2 = helpers.vm_by_name(si2, "k9")
    assert extra_config(vm2)["after.task"] == "done"
    assert vm2.config.hardware.numCPU == 3
    Disconnect(si2)


def test_destroy_survives_kill_9(sim):
    si = sim.connect()
    vm = helpers.create_vm(si, "k9gone")
    wait(vm.Destroy_Task())
    si2 = restart(sim, kill=True)
    assert helpers.vm_by_name(si2, "k9gone") is None
    Disconnect(si2)


def test_non_task_change_survives_kill_9(sim):
    si = sim.connect()
    helpers.vm_folder(si).CreateFolder("k9folder")
    helpers.hosts(si)[0].configManager.networkSystem.AddPortGroup(
        vim.host.PortGroup.Specification(name="k9pg", vlanId=5, vswitchName="vSwitch0",
                                         policy=vim.host.NetworkPolicy()))
    si2 = restart(sim, kill=True)
    assert si2.content.searchIndex.FindByInventoryPath("DC0/vm/k9folder") is not None
    assert "k9pg" in [n.name for n in helpers.dc(si2).network]
    Disconnect(si2)


def test_many_changes_then_kill_9_all_survive(sim):
    si = sim.connect()
    for i in range(15):
        helpers.create_vm(si, f"bulk{i}")
    si2 = restart(sim, kill=True)
    names = {v.name for v in helpers.find_all(si2, vim.VirtualMachine)}
    assert {f"bulk{i}" for i in range(15)} <= names
    Disconnect(si2)


def test_two_restarts_in_a_row_keep_state(sim):
    si = sim.connect()
    helpers.create_vm(si, "twice", extra={"k": "v"})
    si = restart(sim, kill=True)
    helpers.create_vm(si, "twice2")
    si = restart(sim, kill=False)
    assert extra_config(helpers.vm_by_name(si, "twice"))["k"] == "v"
    assert helpers.vm_by_name(si, "twice2") is not None
    Disconnect(si)


def test_new_ids_after_restart_do_not_collide(sim):
    si = sim.connect()
    a = helpers.create_vm(si, "before-restart")
    a_id = a._moId
    si2 = restart(sim, kill=True)
    b = helpers.create_vm(si2, "after-restart")
    assert b._moId != a_id
    assert helpers.vm_by_name(si2, "before-restart")._moId == a_id
    Disconnect(si2)


def test_volatile_guestinfo_does_not_outlive_power_off_after_restart(state_sim):
    sim = state_sim
    si = sim.connect()
    vm = helpers.create_vm(si, "vol")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.hot", "h")])
    si2 = restart(sim, kill=False)
    vm2 = helpers.vm_by_name(si2, "vol")
    helpers.power_off(vm2)
    assert "guestinfo.hot" not in extra_config(vm2)
    Disconnect(si2)


def test_thumbprint_stable_across_restart(sim):
    before = (sim.info["sha1"], sim.info["sha256"])
    sim.stop()
    sim.start()
    assert (sim.info["sha1"], sim.info["sha256"]) == before


def test_instance_uuid_stable_across_restart(sim):
    si = sim.connect()
    uuid = si.content.about.instanceUuid
    si2 = restart(sim, kill=True)
    assert si2.content.about.instanceUuid == uuid
    Disconnect(si2)


def test_old_session_is_invalid_after_restart(sim):
    si = sim.connect()
    content = si.content
    sim.stop()
    sim.start()
    si._stub.DropConnections()  # the pooled TLS connection died with the old process
    with pytest.raises(vim.fault.NotAuthenticated):
        content.rootFolder.childEntity


def test_datastore_files_survive_restart(sim):
    si = sim.connect()
    si.content.fileManager.MakeDirectory(f"[{DS}] keepdir", helpers.dc(si))
    si2 = restart(sim, kill=True)
    assert helpers.ds_local(si2, f"[{DS}] keepdir").is_dir()
    Disconnect(si2)


def test_volatile_guestinfo_of_running_vm_survives_restart(state_sim):
    # The VM is still reported poweredOn after the restart (it "kept running"), so the
    # guestinfo it holds in memory must still be visible, as across a vCenter restart.
    sim = state_sim
    si = sim.connect()
    vm = helpers.create_vm(si, "volrun")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.hot", "h")])
    si2 = restart(sim, kill=False)
    vm2 = helpers.vm_by_name(si2, "volrun")
    assert vm2.runtime.powerState == "poweredOn"
    assert extra_config(vm2).get("guestinfo.hot") == "h"
    Disconnect(si2)


def test_sandboxed_vms_are_off_after_restart(sim_factory):
    # With the process sandbox, a VM is a process of the simulator: a restart ends it, and
    # the inventory must say so (and drop its volatile guestinfo) rather than claim it runs.
    import os
    if os.geteuid() != 0:
        helpers.cannot_run("the process sandbox needs root")
    sim = sim_factory(["--runtime", "sandbox"])
    si = sim.connect()
    vm = helpers.create_vm(si, "sbx")
    helpers.power_on(vm)
    helpers.reconfig(vm, extraConfig=[opt("guestinfo.hot", "h")])
    si2 = restart(sim, kill=True)
    vm2 = helpers.vm_by_name(si2, "sbx")
    assert vm2.runtime.powerState == "poweredOff"
    assert "guestinfo.hot" not in extra_config(vm2)
    Disconnect(si2)
