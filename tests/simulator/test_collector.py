"""PropertyCollector: retrieval through views and traversal specs, paging, property
paths, and WaitForUpdatesEx / WaitForUpdates."""

import threading
import time

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim, vmodl

import helpers

PC = vmodl.query.PropertyCollector


def view_spec(view, obj_type, paths):
    ts = PC.TraversalSpec(name="traverseEntities", type=vim.view.ContainerView,
                          path="view", skip=False)
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[ts])],
        propSet=[PC.PropertySpec(type=obj_type, pathSet=paths)])


def full_traversal():
    """The classic folder traversal set (pyvmomi-community-samples)."""
    SS = PC.SelectionSpec
    TS = PC.TraversalSpec
    rp_to_rp = TS(name="rpToRp", type=vim.ResourcePool, path="resourcePool", skip=False,
                  selectSet=[SS(name="rpToRp"), SS(name="rpToVm")])
    rp_to_vm = TS(name="rpToVm", type=vim.ResourcePool, path="vm", skip=False)
    cr_to_rp = TS(name="crToRp", type=vim.ComputeResource, path="resourcePool", skip=False,
                  selectSet=[SS(name="rpToRp"), SS(name="rpToVm")])
    cr_to_h = TS(name="crToH", type=vim.ComputeResource, path="host", skip=False)
    dc_to_hf = TS(name="dcToHf", type=vim.Datacenter, path="hostFolder", skip=False,
                  selectSet=[SS(name="visitFolders")])
    dc_to_vmf = TS(name="dcToVmf", type=vim.Datacenter, path="vmFolder", skip=False,
                   selectSet=[SS(name="visitFolders")])
    dc_to_ds = TS(name="dcToDs", type=vim.Datacenter, path="datastore", skip=False,
                  selectSet=[SS(name="visitFolders")])
    dc_to_net = TS(name="dcToNet", type=vim.Datacenter, path="networkFolder", skip=False,
                   selectSet=[SS(name="visitFolders")])
    h_to_vm = TS(name="hToVm", type=vim.HostSystem, path="vm", skip=False,
                 selectSet=[SS(name="visitFolders")])
    visit_folders = TS(name="visitFolders", type=vim.Folder, path="childEntity", skip=False,
                       selectSet=[SS(name=n) for n in (
                           "visitFolders", "dcToHf", "dcToVmf", "dcToDs", "dcToNet",
                           "crToH", "crToRp", "hToVm", "rpToVm")])
    return [visit_folders, dc_to_vmf, dc_to_hf, dc_to_ds, dc_to_net, cr_to_h, cr_to_rp,
            rp_to_rp, h_to_vm, rp_to_vm]


# --- retrieval ---------------------------------------------------------------------

def test_retrieve_properties_ex_through_container_view(sim_factory):
    s = sim_factory(["--vms", "7"])
    si = s.connect()
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    res = content.propertyCollector.RetrievePropertiesEx(
        [view_spec(view, vim.VirtualMachine, ["name", "runtime.powerState"])],
        PC.RetrieveOptions())
    assert res.token is None
    names = sorted(p.val for oc in res.objects for p in oc.propSet if p.name == "name")
    assert names == [f"VM{i}" for i in range(7)]
    states = {p.val for oc in res.objects for p in oc.propSet if p.name == "runtime.powerState"}
    assert states == {"poweredOff"}
    # the view itself is skipped
    assert all(isinstance(oc.obj, vim.VirtualMachine) for oc in res.objects)
    view.DestroyView()
    Disconnect(si)


def test_retrieve_properties_ex_pages_with_max_objects(sim_factory):
    s = sim_factory(["--vms", "250"])
    si = s.connect()
    content = si.content
    pc = content.propertyCollector
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    spec = view_spec(view, vim.VirtualMachine, ["name"])
    pages = []
    res = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions(maxObjects=100))
    pages.append(res)
    while res.token:
        res = pc.ContinueRetrievePropertiesEx(res.token)
        pages.append(res)
    assert [len(p.objects) for p in pages] == [100, 100, 50]
    assert pages[0].token and pages[1].token and pages[2].token is None
    names = [p.val for page in pages for oc in page.objects for p in oc.propSet]
    assert len(names) == 250
    assert len(set(names)) == 250
    assert set(names) == {f"VM{i}" for i in range(250)}
    view.DestroyView()
    Disconnect(si)


def test_cancel_retrieve_properties_ex_invalidates_token(sim_factory):
    s = sim_factory(["--vms", "20"])
    si = s.connect()
    content = si.content
    pc = content.propertyCollector
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    res = pc.RetrievePropertiesEx([view_spec(view, vim.VirtualMachine, ["name"])],
                                  PC.RetrieveOptions(maxObjects=5))
    assert res.token
    pc.CancelRetrievePropertiesEx(res.token)
    with pytest.raises(vmodl.MethodFault):
        pc.ContinueRetrievePropertiesEx(res.token)
    Disconnect(si)


def test_retrieve_properties_with_folder_traversal_finds_every_vm(sim_factory):
    s = sim_factory(["--vms", "3"])
    si = s.connect()
    content = si.content
    # one VM in a sub-folder, one in a child resource pool
    sub = helpers.vm_folder(si).CreateFolder("sub")
    helpers.create_vm(si, "in-subfolder", folder=sub)
    rp = helpers.root_pool(si).CreateResourcePool("child", vim.ResourceConfigSpec(
        cpuAllocation=vim.ResourceAllocationInfo(
            reservation=0, limit=-1, expandableReservation=True,
            shares=vim.SharesInfo(level="normal", shares=4000)),
        memoryAllocation=vim.ResourceAllocationInfo(
            reservation=0, limit=-1, expandableReservation=True,
            shares=vim.SharesInfo(level="normal", shares=4000))))
    helpers.create_vm(si, "in-childpool", pool=rp)
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=content.rootFolder, skip=False,
                                 selectSet=full_traversal())],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])])
    result = content.propertyCollector.RetrieveProperties([spec])
    names = sorted(oc.propSet[0].val for oc in result)
    assert names == sorted(["VM0", "VM1", "VM2", "in-subfolder", "in-childpool"])
    Disconnect(si)


def test_folder_traversal_reaches_hosts_datastores_and_networks(si):
    content = si.content
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=content.rootFolder, selectSet=full_traversal())],
        propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=["name"]),
                 PC.PropertySpec(type=vim.Datastore, pathSet=["name"]),
                 PC.PropertySpec(type=vim.Network, pathSet=["name"])])
    result = content.propertyCollector.RetrieveProperties([spec])
    by_type = {}
    for oc in result:
        by_type.setdefault(type(oc.obj).__name__, set()).add(oc.propSet[0].val)
    assert len(by_type["vim.HostSystem"]) == 3
    assert by_type["vim.Datastore"] == {"datastore1"}
    assert "VM Network" in by_type["vim.Network"]
    assert "DPortGroup0" in by_type["vim.dvs.DistributedVirtualPortgroup"]


def test_retrieve_all_properties_of_vm(si):
    vm = helpers.create_vm(si, "allprops")
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)],
                         propSet=[PC.PropertySpec(type=vim.VirtualMachine, all=True)])
    res = si.content.propertyCollector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
    names = {p.name for p in res.objects[0].propSet}
    assert {"name", "config", "runtime", "summary", "parent", "resourcePool"} <= names


def test_retrieve_nested_property_path(si):
    vm = helpers.create_vm(si, "nested")
    got = helpers.props(si, vm, ["config.hardware.numCPU", "summary.config.name"])
    assert got == {"config.hardware.numCPU": 1, "summary.config.name": "nested"}


def test_invalid_top_level_property_raises_invalid_property(si):
    vm = helpers.create_vm(si, "badprop")
    with pytest.raises(vmodl.query.InvalidProperty):
        helpers.props(si, vm, ["noSuchProperty"])


@pytest.mark.xfail(strict=True, reason="known gap: the simulator has no vim25 schema, so an "
                   "unknown field inside a data-object property reads as unset instead of "
                   "raising InvalidProperty (docs/simulator.md)")
def test_invalid_nested_property_raises_invalid_property(si):
    # vCenter validates the whole path against the type schema.
    vm = helpers.create_vm(si, "badnested")
    with pytest.raises(vmodl.query.InvalidProperty):
        helpers.props(si, vm, ["config.noSuchField"])


def test_retrieve_nonexistent_moref_raises_managed_object_not_found(si):
    ghost = vim.VirtualMachine("vm-424242", si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound) as ei:
        helpers.props(si, ghost, ["name"])
    assert ei.value.obj == ghost


def test_property_read_on_nonexistent_moref_raises_managed_object_not_found(si):
    ghost = vim.VirtualMachine("vm-424242", si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        ghost.name


def test_extra_config_key_selector_returns_just_that_option(si):
    vm = helpers.create_vm(si, "sel", extra={"guestinfo.a": "alpha", "guestinfo.b": "beta"})
    got = helpers.props(si, vm, ['config.extraConfig["guestinfo.a"]'])
    ov = got['config.extraConfig["guestinfo.a"]']
    assert isinstance(ov, vim.option.OptionValue)
    assert ov.key == "guestinfo.a"
    assert ov.value == "alpha"


def test_extra_config_key_selector_with_value_subpath(si):
    vm = helpers.create_vm(si, "selv", extra={"guestinfo.a.b": "x.y"})
    got = helpers.props(si, vm, ['config.extraConfig["guestinfo.a.b"].value'])
    assert got == {'config.extraConfig["guestinfo.a.b"].value': "x.y"}


def test_retrieve_properties_ex_returns_none_when_nothing_matches(si):
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    res = content.propertyCollector.RetrievePropertiesEx(
        [view_spec(view, vim.VirtualMachine, ["name"])], PC.RetrieveOptions())
    assert res is None
    view.DestroyView()


# --- property collectors and filters ------------------------------------------------

def power_state_filter(pc, vm, partial=False):
    return pc.CreateFilter(PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vm)],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"])]),
        partial)


def wait_ex(pc, version, seconds=5):
    return pc.WaitForUpdatesEx(version, vim.WaitOptions(maxWaitSeconds=seconds))


def only_change(update):
    """The single (kind, obj, {prop: val}) in an UpdateSet with one object update."""
    assert len(update.filterSet) == 1
    objs = update.filterSet[0].objectSet
    assert len(objs) == 1
    ou = objs[0]
    return ou.kind, ou.obj, {c.name: c.val for c in ou.changeSet}


def test_create_and_destroy_property_collector(si):
    pc = si.content.propertyCollector.CreatePropertyCollector()
    assert isinstance(pc, vmodl.query.PropertyCollector)
    assert pc != si.content.propertyCollector
    vm = helpers.create_vm(si, "pcvm")
    res = pc.RetrievePropertiesEx([PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vm)],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])])],
        PC.RetrieveOptions())
    assert res.objects[0].propSet[0].val == "pcvm"
    pc.DestroyPropertyCollector()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        pc.RetrievePropertiesEx([PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=vm)],
            propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])])],
            PC.RetrieveOptions())


def test_wait_for_updates_ex_initial_update_is_enter(si):
    vm = helpers.create_vm(si, "w1")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    f = power_state_filter(pc, vm)
    u = wait_ex(pc, "")
    assert u is not None
    assert u.filterSet[0].filter == f
    kind, obj, changes = only_change(u)
    assert kind == "enter"
    assert obj == vm
    assert changes == {"runtime.powerState": "poweredOff"}


def test_wait_for_updates_ex_reports_power_on_as_modify(si):
    vm = helpers.create_vm(si, "w2")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    vm.PowerOnVM_Task()
    u = wait_ex(pc, v1)
    assert u is not None
    kind, obj, changes = only_change(u)
    assert (kind, obj, changes) == ("modify", vm, {"runtime.powerState": "poweredOn"})


def test_wait_for_updates_ex_wakes_blocked_waiter(si):
    vm = helpers.create_vm(si, "w3")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    out = {}

    def waiter():
        t0 = time.time()
        out["u"] = wait_ex(pc, v1, seconds=20)
        out["elapsed"] = time.time() - t0

    th = threading.Thread(target=waiter)
    th.start()
    # allow-sleep: the simulator shows no sign that a wait is parked; this gives the waiter
    # time to get there (the test still passes, testing less, if it does not).
    time.sleep(0.3)
    vm.PowerOnVM_Task()
    th.join(10)
    assert not th.is_alive()
    assert out["elapsed"] < 5
    assert only_change(out["u"])[2] == {"runtime.powerState": "poweredOn"}


def test_wait_for_updates_ex_versions_strictly_increase(si):
    vm = helpers.create_vm(si, "w4")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    versions = [wait_ex(pc, "").version]
    vm.PowerOnVM_Task()
    versions.append(wait_ex(pc, versions[-1]).version)
    vm.PowerOffVM_Task()
    versions.append(wait_ex(pc, versions[-1]).version)
    assert all(v for v in versions)
    assert len(set(versions)) == 3
    ints = [int(v) for v in versions]
    assert ints == sorted(ints)


def test_wait_for_updates_ex_times_out_with_none(si):
    vm = helpers.create_vm(si, "w5")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    t0 = time.time()
    u = wait_ex(pc, v1, seconds=1)
    elapsed = time.time() - t0
    assert u is None
    assert 0.8 <= elapsed < 1.9


def test_wait_for_updates_ex_ignores_unwatched_property_changes(si):
    vm = helpers.create_vm(si, "w5b")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    helpers.reconfig(vm, annotation="not watched")
    assert wait_ex(pc, v1, seconds=1) is None


def test_wait_for_updates_ex_max_wait_zero_returns_immediately(si):
    vm = helpers.create_vm(si, "w5c")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    t0 = time.time()
    assert wait_ex(pc, v1, seconds=0) is None
    assert time.time() - t0 < 0.5


def test_wait_for_updates_ex_resending_previous_version_repeats_change(si):
    vm = helpers.create_vm(si, "w6")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    vm.PowerOnVM_Task()
    first = wait_ex(pc, v1)
    assert only_change(first)[2] == {"runtime.powerState": "poweredOn"}
    # the response was "lost": ask again with the version we held before
    again = wait_ex(pc, v1)
    assert again is not None
    assert only_change(again) == only_change(first)


def test_wait_for_updates_ex_unknown_version_raises_invalid_collector_version(si):
    vm = helpers.create_vm(si, "w7")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    wait_ex(pc, "")
    with pytest.raises(vmodl.query.InvalidCollectorVersion):
        wait_ex(pc, "not-a-version", seconds=1)


def test_wait_for_updates_ex_future_version_raises_invalid_collector_version(si):
    vm = helpers.create_vm(si, "w7b")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    bogus = str(int(v1) + 1000) if v1.isdigit() else v1 + "9999"
    with pytest.raises(vmodl.query.InvalidCollectorVersion):
        wait_ex(pc, bogus, seconds=1)


def test_wait_for_updates_ex_reports_leave_when_vm_destroyed(si):
    vm = helpers.create_vm(si, "w8")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    vm.Destroy_Task()
    u = wait_ex(pc, v1)
    assert u is not None
    ou = u.filterSet[0].objectSet[0]
    assert ou.kind == "leave"
    assert ou.obj._moId == vm._moId


def test_wait_for_updates_ex_view_filter_reports_enter_for_new_vm(si):
    content = si.content
    pc = content.propertyCollector.CreatePropertyCollector()
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    pc.CreateFilter(view_spec(view, vim.VirtualMachine, ["name"]), True)
    v1 = wait_ex(pc, "", seconds=0)
    version = v1.version if v1 else ""
    vm = helpers.create_vm(si, "appears")
    u = wait_ex(pc, version)
    assert u is not None
    updates = [(ou.kind, ou.obj) for fs in u.filterSet for ou in fs.objectSet]
    assert ("enter", vm) in updates


def test_destroy_property_filter_stops_updates(si):
    vm = helpers.create_vm(si, "w9")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    f = power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    assert f in pc.filter
    f.DestroyPropertyFilter()
    assert f not in pc.filter
    helpers.power_on(vm)
    assert wait_ex(pc, v1, seconds=1) is None


def test_destroyed_property_filter_cannot_be_destroyed_again(si):
    vm = helpers.create_vm(si, "w10")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    f = power_state_filter(pc, vm)
    f.DestroyPropertyFilter()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        f.DestroyPropertyFilter()


def test_create_filter_on_invalid_property_raises_invalid_property(si):
    vm = helpers.create_vm(si, "w11")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    with pytest.raises(vmodl.query.InvalidProperty):
        pc.CreateFilter(PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=vm)],
            propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["bogusProp"])]),
            False)


def test_legacy_wait_for_updates_returns_initial_then_change(si):
    vm = helpers.create_vm(si, "legacy")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    u1 = pc.WaitForUpdates("")
    assert only_change(u1)[0] == "enter"
    vm.PowerOnVM_Task()
    u2 = pc.WaitForUpdates(u1.version)
    assert only_change(u2)[2] == {"runtime.powerState": "poweredOn"}


def test_check_for_updates_returns_none_without_changes(si):
    vm = helpers.create_vm(si, "check")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    u1 = pc.CheckForUpdates("")
    assert u1 is not None
    assert pc.CheckForUpdates(u1.version) is None


def test_cancel_wait_for_updates_ends_blocked_wait(si):
    vm = helpers.create_vm(si, "cancel")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    out = {}

    def waiter():
        try:
            out["u"] = wait_ex(pc, v1, seconds=20)
        except Exception as e:  # noqa: BLE001
            out["err"] = e

    th = threading.Thread(target=waiter)
    th.start()
    # A cancel only ends a pending wait (a later wait is unaffected), so cancel until the
    # waiter, once parked, is ended by one.
    deadline = time.time() + 10
    while th.is_alive() and time.time() < deadline:
        pc.CancelWaitForUpdates()
        th.join(0.05)
    th.join(10)
    assert not th.is_alive()
    assert isinstance(out.get("err"), vmodl.fault.RequestCanceled)


def test_cancel_wait_for_updates_without_waiter_does_not_poison_next_wait(si):
    # CancelWaitForUpdates only cancels a *pending* wait; a later wait is unaffected.
    vm = helpers.create_vm(si, "cancel2")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    pc.CancelWaitForUpdates()
    assert wait_ex(pc, v1, seconds=0) is None


def test_wait_for_task_works_on_default_collector(si):
    # pyVim.task.WaitForTask uses the legacy WaitForUpdates on the default collector.
    vm = helpers.create_vm(si, "wft")
    task = vm.PowerOnVM_Task()
    assert helpers.WaitForTask(task) == "success"
    assert vm.runtime.powerState == "poweredOn"


def test_destroy_property_collector_ends_blocked_wait_with_request_canceled(si):
    # vSphere: a pending WaitForUpdatesEx fails with RequestCanceled when its
    # PropertyCollector is destroyed.
    vm = helpers.create_vm(si, "destroywait")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    out = {}

    def waiter():
        t0 = time.time()
        try:
            out["u"] = wait_ex(pc, v1, seconds=8)
        except Exception as e:  # noqa: BLE001
            out["err"] = e
        out["elapsed"] = time.time() - t0

    th = threading.Thread(target=waiter)
    th.start()
    # allow-sleep: a destroy before the wait is parked fails the wait differently, and
    # neither vSphere nor the simulator shows that a wait is parked: the waiter gets 0.3 s.
    time.sleep(0.3)
    pc.DestroyPropertyCollector()
    th.join(10)
    assert out["elapsed"] < 3, "the wait was not ended by DestroyPropertyCollector"
    assert isinstance(out.get("err"), vmodl.fault.RequestCanceled)


def test_destroyed_property_collector_stays_destroyed_after_pending_wait(si):
    vm = helpers.create_vm(si, "destroywait2")
    pc = si.content.propertyCollector.CreatePropertyCollector()
    power_state_filter(pc, vm)
    v1 = wait_ex(pc, "").version
    th = threading.Thread(target=lambda: _swallow(lambda: wait_ex(pc, v1, seconds=1)))
    th.start()
    # allow-sleep: the simulator shows no sign that a wait is parked; this gives the waiter
    # time to get there (the test still passes, testing less, if it does not).
    time.sleep(0.2)
    pc.DestroyPropertyCollector()
    th.join(5)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        wait_ex(pc, "", seconds=0)


def _swallow(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def test_wait_for_updates_ex_on_destroyed_collector_raises_managed_object_not_found(si):
    pc = si.content.propertyCollector.CreatePropertyCollector()
    pc.DestroyPropertyCollector()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        wait_ex(pc, "", seconds=0)


def test_filters_are_private_to_their_session(sim):
    a = sim.connect()
    b = sim.connect()
    vm = helpers.create_vm(a, "private")
    pc_a = a.content.propertyCollector
    power_state_filter(pc_a, vm)
    # b's default collector has no filters: nothing to report
    assert wait_ex(b.content.propertyCollector, "", seconds=0) is None
    assert list(b.content.propertyCollector.filter) == []
    assert wait_ex(pc_a, "", seconds=0) is not None
    Disconnect(a)
    Disconnect(b)
