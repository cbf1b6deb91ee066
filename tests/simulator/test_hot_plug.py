"""vSphere's hot-plug rules for reconfiguring a powered-on VM, as vCenter applies them:
memory and vCPU changes need the hot-add/remove switches, the switches only change while
the VM is off, and memory never shrinks while it runs."""

from pyVmomi import vim

import helpers
from helpers import task_fault


def refused(vm, **kw):
    f = task_fault(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(**kw)))
    assert isinstance(f, vim.fault.InvalidPowerState), f
    assert "current state (Powered on)" in f.msg
    return f


def test_running_vm_without_hot_plug_refuses_size_changes(si):
    vm = helpers.create_vm(si, "hp1", memoryMB=256, numCPUs=1)
    assert vm.config.memoryHotAddEnabled is False and vm.config.cpuHotAddEnabled is False
    helpers.power_on(vm)
    refused(vm, memoryMB=512)
    refused(vm, numCPUs=2)
    # The switches themselves only change while the VM is off.
    refused(vm, memoryHotAddEnabled=True)
    assert vm.config.hardware.memoryMB == 256 and vm.config.hardware.numCPU == 1
    # Unchanged sizes are no change at all.
    helpers.reconfig(vm, memoryMB=256, annotation="x")
    helpers.power_off(vm)
    helpers.reconfig(vm, memoryMB=64)
    assert vm.config.hardware.memoryMB == 64


def test_running_vm_with_hot_plug_grows_but_never_shrinks_memory(si):
    vm = helpers.create_vm(si, "hp2", memoryMB=256, numCPUs=2,
                           memoryHotAddEnabled=True, cpuHotAddEnabled=True)
    assert vm.config.memoryHotAddEnabled and vm.config.cpuHotAddEnabled
    assert vm.config.cpuHotRemoveEnabled is False
    helpers.power_on(vm)
    helpers.reconfig(vm, memoryMB=512, numCPUs=4)
    assert vm.config.hardware.memoryMB == 512 and vm.config.hardware.numCPU == 4
    refused(vm, memoryMB=256)
    refused(vm, numCPUs=1)
    helpers.power_off(vm)
    helpers.reconfig(vm, cpuHotRemoveEnabled=True)
    helpers.power_on(vm)
    helpers.reconfig(vm, numCPUs=1)
    assert vm.config.hardware.numCPU == 1
    helpers.power_off(vm)


def test_suspended_vm_hardware_does_not_change(si):
    vm = helpers.create_vm(si, "hp3", memoryMB=256, memoryHotAddEnabled=True)
    helpers.power_on(vm)
    helpers.wait(vm.SuspendVM_Task())
    f = task_fault(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(memoryMB=512)))
    assert isinstance(f, vim.fault.InvalidPowerState) and "Suspended" in f.msg
    assert vm.config.hardware.memoryMB == 256
