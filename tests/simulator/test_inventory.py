"""Inventory: the default shape, ContainerViews, SearchIndex, resource pools, folders and
networks."""

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim, vmodl

import helpers
from helpers import DS, VM_NETWORK, task_fault, wait


# --- default inventory -------------------------------------------------------------

def test_root_folder_holds_datacenter_dc0(si):
    children = si.content.rootFolder.childEntity
    assert [c.name for c in children] == ["DC0"]
    assert isinstance(children[0], vim.Datacenter)


def test_datacenter_has_standard_folders(si):
    dc = helpers.dc(si)
    assert dc.vmFolder.name == "vm"
    assert dc.hostFolder.name == "host"
    assert dc.datastoreFolder.name == "datastore"
    assert dc.networkFolder.name == "network"
    assert "VirtualMachine" in dc.vmFolder.childType


def test_cluster0_has_drs_three_hosts_and_resources_pool(si):
    c = helpers.cluster(si)
    assert c.parent == helpers.dc(si).hostFolder
    assert c.configurationEx.drsConfig.enabled is True
    assert sorted(h.name for h in c.host) == [
        "DC0_C0_H0.sim.local", "DC0_C0_H1.sim.local", "DC0_C0_H2.sim.local"]
    assert c.resourcePool.name == "Resources"
    assert c.resourcePool.owner == c


def test_datacenter_datastore_and_network_lists(si):
    dc = helpers.dc(si)
    assert [d.name for d in dc.datastore] == [DS]
    names = sorted(n.name for n in dc.network)
    assert names == ["DPortGroup0", VM_NETWORK]


def test_dvs_is_vmware_dvs_with_dportgroup0(si):
    d = helpers.dvs(si)
    assert isinstance(d, vim.dvs.VmwareDistributedVirtualSwitch)
    assert d.uuid
    assert [pg.name for pg in d.portgroup] == ["DPortGroup0"]
    pg = d.portgroup[0]
    assert isinstance(pg, vim.dvs.DistributedVirtualPortgroup)
    assert pg.key
    assert pg.config.distributedVirtualSwitch == d


def test_cli_flags_shape_the_inventory(sim_factory):
    s = sim_factory(["--datacenters", "2", "--clusters", "2", "--hosts", "2",
                     "--datastores", "2", "--vms", "4"])
    si = s.connect()
    try:
        assert len(helpers.find_all(si, vim.Datacenter)) == 2
        assert len(helpers.find_all(si, vim.ClusterComputeResource)) == 4
        assert len(helpers.find_all(si, vim.HostSystem)) == 8
        assert len(helpers.find_all(si, vim.Datastore)) == 4
        vms = helpers.find_all(si, vim.VirtualMachine)
        assert sorted(v.name for v in vms) == ["VM0", "VM1", "VM2", "VM3"]
    finally:
        Disconnect(si)


# --- container views -----------------------------------------------------------------

def test_container_view_lists_bulk_vms(sim_factory):
    s = sim_factory(["--vms", "5"])
    si = s.connect()
    try:
        vms = helpers.find_all(si, vim.VirtualMachine)
        assert sorted(v.name for v in vms) == [f"VM{i}" for i in range(5)]
        assert all(v.runtime.powerState == "poweredOff" for v in vms)
    finally:
        Disconnect(si)


def test_container_view_lists_hosts(si):
    hs = helpers.find_all(si, vim.HostSystem)
    assert len(hs) == 3
    assert all(isinstance(h, vim.HostSystem) for h in hs)


def test_container_view_lists_datastores(si):
    ds = helpers.find_all(si, vim.Datastore)
    assert [d.name for d in ds] == [DS]
    assert ds[0].summary.accessible is True
    assert ds[0].summary.capacity > 0


def test_container_view_of_network_includes_dv_portgroups(si):
    nets = helpers.find_all(si, vim.Network)
    by_name = {n.name: n for n in nets}
    assert set(by_name) == {VM_NETWORK, "DPortGroup0"}
    assert isinstance(by_name["DPortGroup0"], vim.dvs.DistributedVirtualPortgroup)
    assert not isinstance(by_name[VM_NETWORK], vim.dvs.DistributedVirtualPortgroup)


def test_container_view_non_recursive_sees_only_direct_children(si):
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [], False)
    try:
        assert [o.name for o in view.view] == ["DC0"]
    finally:
        view.DestroyView()


def test_container_view_reports_container_type_and_recursive(si):
    content = si.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True)
    assert view.container == content.rootFolder
    assert list(view.type) == ["VirtualMachine"]
    assert view.recursive is True
    view.DestroyView()


def test_container_view_sees_vm_created_after_view(si):
    content = si.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True)
    assert list(view.view) == []
    vm = helpers.create_vm(si, "late")
    assert list(view.view) == [vm]
    view.DestroyView()


def test_destroyed_view_is_gone(si):
    content = si.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.HostSystem], True)
    view.DestroyView()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        view.view


def test_container_view_on_cluster_lists_its_hosts(si):
    c = helpers.cluster(si)
    hs = helpers.find_all(si, vim.HostSystem, container=c)
    assert sorted(hs, key=lambda h: h._moId) == sorted(c.host, key=lambda h: h._moId)


# --- SearchIndex ---------------------------------------------------------------------

def test_find_by_inventory_path_finds_vm(si):
    vm = helpers.create_vm(si, "pathvm")
    found = si.content.searchIndex.FindByInventoryPath("DC0/vm/pathvm")
    assert found == vm


def test_find_by_inventory_path_finds_cluster_root_pool(si):
    found = si.content.searchIndex.FindByInventoryPath("DC0/host/Cluster0/Resources")
    assert found == helpers.root_pool(si)
    assert isinstance(found, vim.ResourcePool)


def test_find_by_inventory_path_finds_host(si):
    found = si.content.searchIndex.FindByInventoryPath(
        "DC0/host/Cluster0/DC0_C0_H1.sim.local")
    assert isinstance(found, vim.HostSystem)
    assert found.name == "DC0_C0_H1.sim.local"


def test_find_by_inventory_path_finds_vm_in_subfolder(si):
    sub = helpers.vm_folder(si).CreateFolder("team-a")
    vm = helpers.create_vm(si, "deep", folder=sub)
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/team-a/deep") == vm


def test_find_by_inventory_path_unknown_returns_none(si):
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/no-such-vm") is None
    assert si.content.searchIndex.FindByInventoryPath("NoDC/vm") is None


def test_find_child_finds_vm_folder_by_name(si):
    dc = helpers.dc(si)
    assert si.content.searchIndex.FindChild(dc, "vm") == dc.vmFolder


def test_find_child_finds_vm_in_folder(si):
    vm = helpers.create_vm(si, "child1")
    assert si.content.searchIndex.FindChild(helpers.vm_folder(si), "child1") == vm


def test_find_child_unknown_returns_none(si):
    assert si.content.searchIndex.FindChild(helpers.vm_folder(si), "nothing") is None


def test_find_by_uuid_finds_vm_by_bios_uuid(si):
    vm = helpers.create_vm(si, "uuidvm")
    uuid = vm.config.uuid
    found = si.content.searchIndex.FindByUuid(None, uuid, True)
    assert found == vm


def test_find_by_uuid_is_case_insensitive(si):
    vm = helpers.create_vm(si, "uuidcase")
    found = si.content.searchIndex.FindByUuid(None, vm.config.uuid.upper(), True)
    assert found == vm


def test_find_by_uuid_with_instance_uuid(si):
    vm = helpers.create_vm(si, "iuuidvm")
    iuuid = vm.config.instanceUuid
    assert iuuid != vm.config.uuid
    found = si.content.searchIndex.FindByUuid(None, iuuid, True, True)
    assert found == vm
    # The instance uuid is not a BIOS uuid.
    assert si.content.searchIndex.FindByUuid(None, iuuid, True, False) is None


def test_find_by_uuid_unknown_returns_none(si):
    assert si.content.searchIndex.FindByUuid(
        None, "11111111-2222-3333-4444-555555555555", True) is None


def test_find_by_uuid_finds_host_when_vm_search_false(si):
    h = helpers.hosts(si)[0]
    uuid = h.hardware.systemInfo.uuid
    assert si.content.searchIndex.FindByUuid(None, uuid, False) == h


def test_find_all_by_uuid_returns_list(si):
    vm = helpers.create_vm(si, "alluuid")
    found = si.content.searchIndex.FindAllByUuid(None, vm.config.uuid, True)
    assert list(found) == [vm]


# --- resource pools -------------------------------------------------------------------

def pool_spec(cpu_limit=-1, mem_limit=-1, cpu_res=0, mem_res=0):
    def alloc(res, limit):
        return vim.ResourceAllocationInfo(
            reservation=res, limit=limit, expandableReservation=True,
            shares=vim.SharesInfo(level="normal", shares=4000))
    return vim.ResourceConfigSpec(cpuAllocation=alloc(cpu_res, cpu_limit),
                                  memoryAllocation=alloc(mem_res, mem_limit))


def test_create_resource_pool_with_allocations(si):
    root = helpers.root_pool(si)
    rp = root.CreateResourcePool("rp1", pool_spec(cpu_limit=2000, mem_limit=1024,
                                                  cpu_res=100, mem_res=64))
    assert isinstance(rp, vim.ResourcePool)
    assert rp.name == "rp1"
    assert rp.parent == root
    assert rp.owner == helpers.cluster(si)
    assert rp.config.cpuAllocation.limit == 2000
    assert rp.config.cpuAllocation.reservation == 100
    assert rp.config.memoryAllocation.limit == 1024
    assert rp.config.memoryAllocation.reservation == 64
    assert rp in root.resourcePool


def test_create_resource_pool_duplicate_name_raises_duplicate_name(si):
    root = helpers.root_pool(si)
    root.CreateResourcePool("dup", pool_spec())
    with pytest.raises(vim.fault.DuplicateName):
        root.CreateResourcePool("dup", pool_spec())


def test_nested_resource_pool_is_found_by_inventory_path(si):
    root = helpers.root_pool(si)
    a = root.CreateResourcePool("a", pool_spec())
    b = a.CreateResourcePool("b", pool_spec())
    assert si.content.searchIndex.FindByInventoryPath("DC0/host/Cluster0/Resources/a/b") == b


def test_update_config_changes_memory_limit(si):
    rp = helpers.root_pool(si).CreateResourcePool("upd", pool_spec(mem_limit=1024))
    spec = rp.config  # read-modify-write, as admin scripts do (carries changeVersion)
    spec.memoryAllocation.limit = 4096
    rp.UpdateConfig(None, spec)
    assert rp.config.memoryAllocation.limit == 4096
    assert rp.config.cpuAllocation.limit == -1


def test_update_config_without_change_version_changes_cpu_limit(si):
    rp = helpers.root_pool(si).CreateResourcePool("upd2", pool_spec())
    spec = pool_spec(cpu_limit=1500, mem_limit=2048)
    rp.UpdateConfig(None, spec)
    assert rp.config.cpuAllocation.limit == 1500
    assert rp.config.memoryAllocation.limit == 2048


def test_update_config_with_stale_change_version_raises_concurrent_access(si):
    rp = helpers.root_pool(si).CreateResourcePool("upd3", pool_spec())
    stale = rp.config
    fresh = rp.config
    fresh.memoryAllocation.limit = 512
    rp.UpdateConfig(None, fresh)
    stale.memoryAllocation.limit = 256
    with pytest.raises(vim.fault.ConcurrentAccess):
        rp.UpdateConfig(None, stale)
    assert rp.config.memoryAllocation.limit == 512


def test_update_config_renames_pool(si):
    rp = helpers.root_pool(si).CreateResourcePool("before", pool_spec())
    rp.UpdateConfig("after", None)
    assert rp.name == "after"


def test_destroy_resource_pool_moves_vms_to_parent(si):
    root = helpers.root_pool(si)
    rp = root.CreateResourcePool("doomed", pool_spec())
    vm = helpers.create_vm(si, "inpool", pool=rp)
    assert vm.resourcePool == rp
    wait(rp.Destroy_Task())
    assert vm.resourcePool == root
    assert vm in root.vm
    assert rp not in root.resourcePool


def test_destroy_resource_pool_moves_child_pools_to_parent(si):
    root = helpers.root_pool(si)
    rp = root.CreateResourcePool("outer", pool_spec())
    inner = rp.CreateResourcePool("inner", pool_spec())
    wait(rp.Destroy_Task())
    assert inner.parent == root
    assert inner in root.resourcePool


def test_destroyed_resource_pool_is_gone(si):
    rp = helpers.root_pool(si).CreateResourcePool("gone", pool_spec())
    wait(rp.Destroy_Task())
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        rp.name


# --- folders --------------------------------------------------------------------------

def test_create_folder_in_vm_folder(si):
    parent = helpers.vm_folder(si)
    f = parent.CreateFolder("f1")
    assert isinstance(f, vim.Folder)
    assert f.name == "f1"
    assert f.parent == parent
    assert f in parent.childEntity
    assert "VirtualMachine" in f.childType


def test_create_folder_duplicate_raises_duplicate_name(si):
    parent = helpers.vm_folder(si)
    parent.CreateFolder("twice")
    with pytest.raises(vim.fault.DuplicateName):
        parent.CreateFolder("twice")


def test_create_folder_with_empty_name_raises_invalid_name(si):
    with pytest.raises(vim.fault.InvalidName):
        helpers.vm_folder(si).CreateFolder("")


def test_rename_folder(si):
    f = helpers.vm_folder(si).CreateFolder("old")
    wait(f.Rename_Task("new"))
    assert f.name == "new"
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/new") == f
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/old") is None


def test_rename_folder_to_sibling_name_raises_duplicate_name(si):
    parent = helpers.vm_folder(si)
    parent.CreateFolder("x")
    y = parent.CreateFolder("y")
    with pytest.raises(vim.fault.DuplicateName):
        wait(y.Rename_Task("x"))


def test_destroy_empty_folder(si):
    parent = helpers.vm_folder(si)
    f = parent.CreateFolder("empty")
    wait(f.Destroy_Task())
    assert f not in parent.childEntity
    assert si.content.searchIndex.FindChild(parent, "empty") is None


def test_rename_vm(si):
    vm = helpers.create_vm(si, "vm-old")
    wait(vm.Rename_Task("vm-new"))
    assert vm.name == "vm-new"
    assert vm.config.name == "vm-new"


# --- networks -------------------------------------------------------------------------

def add_pg(host, name="pg1", vlan=10):
    ns = host.configManager.networkSystem
    ns.AddPortGroup(vim.host.PortGroup.Specification(
        name=name, vlanId=vlan, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()))
    return ns


def test_add_port_group_creates_network_in_datacenter(si):
    add_pg(helpers.hosts(si)[0])
    nets = {n.name: n for n in helpers.dc(si).network}
    assert "pg1" in nets
    assert isinstance(nets["pg1"], vim.Network)
    assert not isinstance(nets["pg1"], vim.dvs.DistributedVirtualPortgroup)


def test_add_port_group_appears_in_network_info(si):
    ns = add_pg(helpers.hosts(si)[0], vlan=42)
    pgs = {p.spec.name: p for p in ns.networkInfo.portgroup}
    assert "pg1" in pgs
    assert pgs["pg1"].spec.vlanId == 42
    assert pgs["pg1"].spec.vswitchName == "vSwitch0"


def test_add_port_group_twice_raises_already_exists(si):
    h = helpers.hosts(si)[0]
    add_pg(h)
    with pytest.raises(vim.fault.AlreadyExists):
        add_pg(h)


def test_add_port_group_on_unknown_vswitch_raises_not_found(si):
    ns = helpers.hosts(si)[0].configManager.networkSystem
    with pytest.raises(vim.fault.NotFound):
        ns.AddPortGroup(vim.host.PortGroup.Specification(
            name="pgx", vlanId=0, vswitchName="vSwitch9", policy=vim.host.NetworkPolicy()))


def test_remove_port_group(si):
    h = helpers.hosts(si)[0]
    ns = add_pg(h)
    ns.RemovePortGroup("pg1")
    assert "pg1" not in [p.spec.name for p in ns.networkInfo.portgroup]
    assert "pg1" not in [n.name for n in helpers.dc(si).network]


def test_remove_unknown_port_group_raises_not_found(si):
    ns = helpers.hosts(si)[0].configManager.networkSystem
    with pytest.raises(vim.fault.NotFound):
        ns.RemovePortGroup("never-added")


def test_port_group_network_lists_host(si):
    h = helpers.hosts(si)[0]
    add_pg(h)
    net = helpers.network(si, "pg1")
    assert h in net.host
    assert net in h.network


def test_create_dv_portgroup(si):
    d = helpers.dvs(si)
    wait(d.CreateDVPortgroup_Task(vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
        name="dpg1", numPorts=16, type="earlyBinding")))
    pg = helpers.dvpg(si, "dpg1")
    assert isinstance(pg, vim.dvs.DistributedVirtualPortgroup)
    assert pg in d.portgroup
    assert pg.config.numPorts == 16
    assert pg.config.type == "earlyBinding"
    assert pg.config.distributedVirtualSwitch == d
    assert pg in helpers.dc(si).network


def test_create_dv_portgroup_duplicate_raises_duplicate_name(si):
    d = helpers.dvs(si)
    spec = vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
        name="dpg-dup", numPorts=8, type="earlyBinding")
    wait(d.CreateDVPortgroup_Task(spec))
    with pytest.raises(vim.fault.DuplicateName):
        wait(d.CreateDVPortgroup_Task(spec))


def test_destroy_unused_dv_portgroup(si):
    d = helpers.dvs(si)
    wait(d.CreateDVPortgroup_Task(vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
        name="dpg-tmp", numPorts=8, type="earlyBinding")))
    pg = helpers.dvpg(si, "dpg-tmp")
    wait(pg.Destroy_Task())
    assert pg not in d.portgroup
    assert helpers.dvpg(si, "dpg-tmp") is None


def test_destroy_folder_is_recursive(si):
    # Folder.Destroy_Task destroys the folder's children (VMs are removed from disk).
    parent = helpers.vm_folder(si)
    f = parent.CreateFolder("tree")
    sub = f.CreateFolder("leaf")
    vm = helpers.create_vm(si, "inside", folder=sub)
    vmdir = helpers.ds_local(si, vm.config.files.vmPathName).parent
    wait(f.Destroy_Task())
    assert si.content.searchIndex.FindChild(parent, "tree") is None
    assert helpers.vm_by_name(si, "tree/leaf/inside") is None
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        vm.name
    assert not vmdir.exists()


def test_list_view_lists_given_objects(si):
    a = helpers.create_vm(si, "lv-a")
    b = helpers.create_vm(si, "lv-b")
    view = si.content.viewManager.CreateListView([a, b])
    assert sorted(view.view, key=lambda o: o._moId) == sorted([a, b], key=lambda o: o._moId)
    view.DestroyView()


def test_datastore_free_space_drops_after_upload(si, sim):
    ds = helpers.datastore(si)
    before = ds.summary.freeSpace
    si.content.fileManager.MakeDirectory(f"[{DS}] space", helpers.dc(si))
    r = helpers.http("PUT", helpers.folder_url(sim, "space/blob"), si=si,
                     data=helpers.random_bytes(4 * 1024 * 1024))
    assert r.status_code == 201
    after = ds.summary.freeSpace
    assert before - after >= 3 * 1024 * 1024
    assert after <= ds.summary.capacity


def test_move_into_folder_as_govc_object_mv_does(si):
    """govc object.mv: Folder.MoveIntoFolder_Task(list) with vCenter's faults."""
    root = helpers.vm_folder(si)
    a = root.CreateFolder("mv-a")
    b = root.CreateFolder("mv-b")
    vm = helpers.create_vm(si, "mover")
    wait(a.MoveIntoFolder_Task([vm]))
    assert vm.parent == a and vm in a.childEntity and vm not in root.childEntity
    # A folder into itself or below itself, a host into a VM folder, a name clash.
    wait(a.MoveIntoFolder_Task([b]))
    assert b.parent == a
    assert isinstance(task_fault(b.MoveIntoFolder_Task([a])), vim.fault.InvalidFolder)
    assert isinstance(task_fault(a.MoveIntoFolder_Task([helpers.hosts(si)[0]])), vmodl.fault.NotSupported)
    helpers.create_vm(si, "mover", folder=b)
    assert isinstance(task_fault(b.MoveIntoFolder_Task([vm])), vim.fault.DuplicateName)
    assert vm.parent == a, "nothing moved on a fault"
