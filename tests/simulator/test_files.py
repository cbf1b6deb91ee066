"""Datastore files through the API: FileManager, VirtualDiskManager and the datastore
browser."""

import pytest
from pyVmomi import vim, vmodl

import helpers
from helpers import DS, task_fault, wait


def fm(si):
    return si.content.fileManager


def vdm(si):
    return si.content.virtualDiskManager


def disk_spec(kb=1024):
    return vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        diskType="thin", adapterType="lsiLogic", capacityKb=kb)


def local(si, path):
    return helpers.ds_local(si, path)


# --- FileManager ----------------------------------------------------------------------

def test_make_directory(si):
    fm(si).MakeDirectory(f"[{DS}] d1", helpers.dc(si))
    assert local(si, f"[{DS}] d1").is_dir()


def test_make_directory_twice_raises_file_already_exists(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] d1", dc)
    with pytest.raises(vim.fault.FileAlreadyExists):
        fm(si).MakeDirectory(f"[{DS}] d1", dc)


def test_make_directory_missing_parent_raises_file_not_found(si):
    with pytest.raises(vim.fault.FileNotFound):
        fm(si).MakeDirectory(f"[{DS}] no/such/parent", helpers.dc(si))
    assert not local(si, f"[{DS}] no").exists()


def test_make_directory_with_create_parents(si):
    fm(si).MakeDirectory(f"[{DS}] a/b/c", helpers.dc(si), True)
    assert local(si, f"[{DS}] a/b/c").is_dir()


def test_make_directory_with_dotdot_raises_invalid_datastore_path(si):
    with pytest.raises(vim.fault.InvalidDatastorePath):
        fm(si).MakeDirectory(f"[{DS}] ../escape", helpers.dc(si))
    assert not (local(si, f"[{DS}] x").parent.parent / "escape").exists()


def test_make_directory_on_unknown_datastore_raises_invalid_datastore(si):
    with pytest.raises(vim.fault.InvalidDatastore):
        fm(si).MakeDirectory("[nope] d1", helpers.dc(si))


def test_make_directory_with_path_without_brackets_raises_invalid_datastore_path(si):
    with pytest.raises(vim.fault.InvalidDatastorePath):
        fm(si).MakeDirectory("datastore1/d1", helpers.dc(si))


def test_delete_datastore_file_removes_directory(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] gone", dc)
    wait(fm(si).DeleteDatastoreFile_Task(f"[{DS}] gone", dc))
    assert not local(si, f"[{DS}] gone").exists()


def test_delete_datastore_file_removes_file(si, sim):
    r = helpers.http("PUT", helpers.folder_url(sim, "f.txt"), si=si, data=b"x")
    assert r.status_code in (200, 201)
    wait(fm(si).DeleteDatastoreFile_Task(f"[{DS}] f.txt", helpers.dc(si)))
    assert not local(si, f"[{DS}] f.txt").exists()


def test_delete_missing_datastore_file_raises_file_not_found(si):
    fault = task_fault(fm(si).DeleteDatastoreFile_Task(f"[{DS}] missing", helpers.dc(si)))
    assert isinstance(fault, vim.fault.FileNotFound)


def test_delete_datastore_root_is_refused(si):
    with pytest.raises(vmodl.MethodFault):
        wait(fm(si).DeleteDatastoreFile_Task(f"[{DS}]", helpers.dc(si)))


def test_delete_datastore_root_keeps_datastore_contents(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] precious", dc)
    try:
        wait(fm(si).DeleteDatastoreFile_Task(f"[{DS}]", dc))
    except vmodl.MethodFault:
        pass
    assert local(si, f"[{DS}] precious").is_dir()


def test_delete_datastore_file_with_dotdot_raises_invalid_datastore_path(si):
    with pytest.raises(vim.fault.InvalidDatastorePath):
        wait(fm(si).DeleteDatastoreFile_Task(f"[{DS}] a/../../x", helpers.dc(si)))


def test_move_datastore_file(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] src", dc)
    wait(fm(si).MoveDatastoreFile_Task(f"[{DS}] src", dc, f"[{DS}] dst", dc))
    assert not local(si, f"[{DS}] src").exists()
    assert local(si, f"[{DS}] dst").is_dir()


def test_move_datastore_file_onto_existing_without_force_raises_file_already_exists(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] m1", dc)
    fm(si).MakeDirectory(f"[{DS}] m2", dc)
    fault = task_fault(fm(si).MoveDatastoreFile_Task(f"[{DS}] m1", dc, f"[{DS}] m2", dc))
    assert isinstance(fault, vim.fault.FileAlreadyExists)
    assert local(si, f"[{DS}] m1").is_dir()


def test_move_missing_datastore_file_raises_file_not_found(si):
    dc = helpers.dc(si)
    fault = task_fault(fm(si).MoveDatastoreFile_Task(f"[{DS}] nothing", dc,
                                                     f"[{DS}] dst", dc))
    assert isinstance(fault, vim.fault.FileNotFound)


def test_copy_datastore_file_copies_directory_tree(si, sim):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] tree/sub", dc, True)
    helpers.http("PUT", helpers.folder_url(sim, "tree/sub/f.bin"), si=si, data=b"abc")
    wait(fm(si).CopyDatastoreFile_Task(f"[{DS}] tree", dc, f"[{DS}] tree2", dc))
    assert local(si, f"[{DS}] tree2/sub/f.bin").read_bytes() == b"abc"
    assert local(si, f"[{DS}] tree/sub/f.bin").read_bytes() == b"abc"


# --- VirtualDiskManager -------------------------------------------------------------------

def test_create_virtual_disk_creates_descriptor_and_flat(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] disks", dc)
    result = wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] disks/d.vmdk", dc, disk_spec(1024)))
    assert result == f"[{DS}] disks/d.vmdk"
    desc = local(si, f"[{DS}] disks/d.vmdk")
    flat = local(si, f"[{DS}] disks/d-flat.vmdk")
    assert desc.is_file()
    assert flat.is_file()
    assert flat.stat().st_size == 1024 * 1024
    assert "d-flat.vmdk" in desc.read_text()


def test_create_virtual_disk_twice_raises_file_already_exists(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] twice.vmdk", dc, disk_spec()))
    fault = task_fault(vdm(si).CreateVirtualDisk_Task(f"[{DS}] twice.vmdk", dc, disk_spec()))
    assert isinstance(fault, vim.fault.FileAlreadyExists)


def test_copy_virtual_disk_copies_both_files(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] orig.vmdk", dc, disk_spec(64)))
    wait(vdm(si).CopyVirtualDisk_Task(f"[{DS}] orig.vmdk", dc, f"[{DS}] copy.vmdk", dc))
    assert local(si, f"[{DS}] copy.vmdk").is_file()
    assert local(si, f"[{DS}] copy-flat.vmdk").is_file()
    assert local(si, f"[{DS}] copy-flat.vmdk").stat().st_size == 64 * 1024
    # the copy's descriptor points at its own extent, not the source's
    text = local(si, f"[{DS}] copy.vmdk").read_text()
    assert '"copy-flat.vmdk"' in text
    assert "orig-flat.vmdk" not in text
    assert local(si, f"[{DS}] orig.vmdk").is_file()


def test_copy_virtual_disk_onto_existing_raises_file_already_exists(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] c1.vmdk", dc, disk_spec(64)))
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] c2.vmdk", dc, disk_spec(64)))
    fault = task_fault(vdm(si).CopyVirtualDisk_Task(f"[{DS}] c1.vmdk", dc,
                                                    f"[{DS}] c2.vmdk", dc))
    assert isinstance(fault, vim.fault.FileAlreadyExists)


def test_copy_missing_virtual_disk_raises_file_not_found(si):
    dc = helpers.dc(si)
    fault = task_fault(vdm(si).CopyVirtualDisk_Task(f"[{DS}] none.vmdk", dc,
                                                    f"[{DS}] x.vmdk", dc))
    assert isinstance(fault, vim.fault.FileNotFound)


def test_delete_virtual_disk_removes_both_files(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] del.vmdk", dc, disk_spec(64)))
    wait(vdm(si).DeleteVirtualDisk_Task(f"[{DS}] del.vmdk", dc))
    assert not local(si, f"[{DS}] del.vmdk").exists()
    assert not local(si, f"[{DS}] del-flat.vmdk").exists()


def test_delete_missing_virtual_disk_raises_file_not_found(si):
    fault = task_fault(vdm(si).DeleteVirtualDisk_Task(f"[{DS}] nope.vmdk", helpers.dc(si)))
    assert isinstance(fault, vim.fault.FileNotFound)


def test_create_virtual_disk_with_dotdot_raises_invalid_datastore_path(si):
    with pytest.raises(vim.fault.InvalidDatastorePath):
        wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] ../../evil.vmdk", helpers.dc(si),
                                            disk_spec()))


def test_copy_virtual_disk_with_dotdot_destination_raises_invalid_datastore_path(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] okdisk.vmdk", dc, disk_spec(64)))
    with pytest.raises(vim.fault.InvalidDatastorePath):
        wait(vdm(si).CopyVirtualDisk_Task(f"[{DS}] okdisk.vmdk", dc,
                                          f"[{DS}] ../out.vmdk", dc))


def test_virtual_disk_attachable_to_vm(si):
    dc = helpers.dc(si)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] attach.vmdk", dc, disk_spec(2048)))
    spec = helpers.disk_spec(file_name=f"[{DS}] attach.vmdk")
    spec.fileOperation = None
    vm = helpers.create_vm(si, "attachvm", devices=[helpers.pvscsi_spec(), spec])
    d = helpers.devices_of(vm, vim.vm.device.VirtualDisk)[0]
    assert d.backing.fileName == f"[{DS}] attach.vmdk"


def test_attach_missing_disk_raises_file_not_found(si):
    spec = helpers.disk_spec(file_name=f"[{DS}] absent.vmdk")
    spec.fileOperation = None
    with pytest.raises(vim.fault.FileNotFound):
        helpers.create_vm(si, "attachmissing", devices=[helpers.pvscsi_spec(), spec])


# --- datastore browser ------------------------------------------------------------------

def test_search_datastore_lists_directory_entries(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] b/inner", dc, True)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] b/x.vmdk", dc, disk_spec(64)))
    res = wait(helpers.datastore(si).browser.SearchDatastore_Task(
        f"[{DS}] b", vim.host.DatastoreBrowser.SearchSpec()))
    assert res.datastore == helpers.datastore(si)
    names = sorted(f.path for f in res.file)
    # the flat extent is shown through its descriptor, as on ESXi
    assert names == ["inner", "x.vmdk"]


def test_search_datastore_match_pattern(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] pat", dc)
    wait(vdm(si).CreateVirtualDisk_Task(f"[{DS}] pat/a.vmdk", dc, disk_spec(64)))
    fm(si).MakeDirectory(f"[{DS}] pat/dir", dc)
    res = wait(helpers.datastore(si).browser.SearchDatastore_Task(
        f"[{DS}] pat", vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"])))
    assert [f.path for f in res.file] == ["a.vmdk"]


def test_search_datastore_subfolders_recurses(si):
    dc = helpers.dc(si)
    fm(si).MakeDirectory(f"[{DS}] r/s/t", dc, True)
    res = wait(helpers.datastore(si).browser.SearchDatastoreSubFolders_Task(
        f"[{DS}] r", vim.host.DatastoreBrowser.SearchSpec()))
    folders = sorted(r.folderPath for r in res)
    assert len(folders) == 3
    assert any(p.rstrip("/").endswith("r/s/t") for p in folders)


def test_search_missing_directory_raises_file_not_found(si):
    fault = task_fault(helpers.datastore(si).browser.SearchDatastore_Task(
        f"[{DS}] nowhere", vim.host.DatastoreBrowser.SearchSpec()))
    assert isinstance(fault, vim.fault.FileNotFound)
