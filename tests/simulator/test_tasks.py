"""Tasks: TaskInfo fields, failed tasks, TaskManager.recentTask."""

import datetime

import pytest
from pyVmomi import vim, vmodl

import helpers
from helpers import task_fault, wait


def expected_description_id(mo_type, wsdl_method):
    """vCenter's TaskInfo.descriptionId is '<Type>.<vmodlMethodName>', e.g.
    'VirtualMachine.powerOn' for PowerOnVM_Task; pyVmomi knows the vmodl name."""
    for name in dir(mo_type):
        try:
            mi = mo_type._GetMethodInfo(name)
        except Exception:  # noqa: BLE001
            continue
        if mi.wsdlName == wsdl_method:
            vmodl_name = mi.name[0].lower() + mi.name[1:]
            return f"{mo_type._wsdlName}.{vmodl_name}"
    raise KeyError(wsdl_method)


def test_successful_task_info(si):
    vm = helpers.create_vm(si, "t1")
    task = vm.PowerOnVM_Task()
    wait(task)
    info = task.info
    assert info.state == "success"
    assert info.entity == vm
    assert info.entityName == "t1"
    assert info.error is None
    assert isinstance(info.queueTime, datetime.datetime)
    assert isinstance(info.startTime, datetime.datetime)
    assert isinstance(info.completeTime, datetime.datetime)
    assert info.queueTime <= info.startTime <= info.completeTime
    assert info.task == task
    assert info.key


def test_task_info_name_is_the_method(si):
    vm = helpers.create_vm(si, "t1n")
    task = vm.PowerOnVM_Task()
    wait(task)
    # pyVmomi turns the wsdl method name into the method's info
    assert task.info.name.info.wsdlName == "PowerOnVM_Task"


def test_power_on_task_description_id(si):
    vm = helpers.create_vm(si, "t2")
    task = vm.PowerOnVM_Task()
    wait(task)
    assert task.info.descriptionId == expected_description_id(vim.VirtualMachine,
                                                              "PowerOnVM_Task")
    assert task.info.descriptionId == "VirtualMachine.powerOn"


def test_create_vm_task_description_id(si):
    task = helpers.vm_folder(si).CreateVM_Task(
        config=helpers.vm_config_spec("t2b"), pool=helpers.root_pool(si))
    wait(task)
    assert task.info.descriptionId == "Folder.createVm"


def test_destroy_task_description_id(si):
    vm = helpers.create_vm(si, "t2c")
    task = vm.Destroy_Task()
    wait(task)
    assert task.info.descriptionId == "VirtualMachine.destroy"


def test_create_vm_task_result_is_the_new_vm(si):
    task = helpers.vm_folder(si).CreateVM_Task(
        config=helpers.vm_config_spec("t3"), pool=helpers.root_pool(si))
    wait(task)
    vm = task.info.result
    assert isinstance(vm, vim.VirtualMachine)
    assert vm.name == "t3"


def test_failed_task_info_error_is_the_fault(si):
    vm = helpers.create_vm(si, "t4")
    helpers.power_on(vm)
    task = vm.PowerOnVM_Task()
    fault = task_fault(task)
    info = task.info
    assert info.state == "error"
    assert isinstance(info.error, vim.fault.InvalidPowerState)
    assert isinstance(fault, vim.fault.InvalidPowerState)
    assert info.error.existingState == "poweredOn"
    assert info.error.msg
    assert info.result is None
    assert isinstance(info.completeTime, datetime.datetime)


def test_task_manager_recent_task_contains_recent_tasks(si):
    vm = helpers.create_vm(si, "t5")
    t1 = vm.PowerOnVM_Task()
    wait(t1)
    t2 = vm.PowerOffVM_Task()
    wait(t2)
    recent = si.content.taskManager.recentTask
    assert t1 in recent
    assert t2 in recent


def test_entity_recent_task_contains_its_recent_task(si):
    # ManagedEntity.recentTask lists recent tasks on the entity in any state
    # (queued, running, success, error), not only the running ones.
    vm = helpers.create_vm(si, "t6")
    t = vm.PowerOnVM_Task()
    wait(t)
    assert t in vm.recentTask


def test_task_property_read_via_collector(si):
    vm = helpers.create_vm(si, "t7")
    task = vm.PowerOnVM_Task()
    wait(task)
    got = helpers.props(si, task, ["info.state", "info.entity"])
    assert got["info.state"] == "success"
    assert got["info.entity"] == vm


def test_unknown_task_moref_raises_managed_object_not_found(si):
    ghost = vim.Task("task-999999", si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        ghost.info
