#!/bin/sh
# Escape attempts a hostile image makes as container root (busybox sh). Each attempt prints
# "<name> blocked" or "<name> ESCAPED"; tests/system/test_confinement.py runs it against the
# VCH (every attempt must be blocked) and tests/bench/escape_bench.py against dockerd too.
try() { # try NAME COMMAND...: the command succeeding is an escape
  name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "$name ESCAPED"; else echo "$name blocked"; fi
}
try core_pattern sh -c "echo '|/bin/true' > /proc/sys/kernel/core_pattern"
try sysctl_write sh -c "echo 1 > /proc/sys/vm/drop_caches"
try sysrq_trigger sh -c "echo h > /proc/sysrq-trigger"
try sys_write sh -c "echo 1 > /sys/kernel/mm/ksm/run"
mkdir -p /tmp/cg
try mount_cgroup_v1 mount -t cgroup -o memory none /tmp/cg
try mount_cgroup_v2 mount -t cgroup2 none /tmp/cg
try mount_proc mount -t proc proc /tmp/cg
try mount_tmpfs mount -t tmpfs none /tmp/cg
try remount_proc_sys_rw mount -o remount,rw /proc/sys
try umount_proc_mask umount /proc/kcore
try mknod_loop_read sh -c "mknod /tmp/loop0 b 7 0 && dd if=/tmp/loop0 of=/dev/null bs=512 count=1"
try mknod_dev_read sh -c "mknod /dev/sda1 b 8 1 && dd if=/dev/sda1 of=/dev/null bs=512 count=1"
try mknod_mem_read sh -c "mknod /tmp/mem c 1 1 && dd if=/tmp/mem of=/dev/null bs=1 count=1"
try kernel_log_dmesg dmesg
try kernel_log_kmsg sh -c "test -s /proc/kmsg && head -c 1 /proc/kmsg | grep -q ."
try kcore_read sh -c "head -c 1 /proc/kcore | grep -q ."
try keys_read sh -c "grep -q . /proc/keys"
try timer_list_read sh -c "grep -q . /proc/timer_list"
try unshare_user unshare -U true
try unshare_mount unshare -m true
try unshare_net unshare -n true
try set_clock sh -c "date -s 2001-01-01; [ \$(date +%Y) = 2001 ]"
try set_hostname hostname evil
try swapoff swapoff -a
try reboot reboot -f
try pid1_root ls /proc/1/root/
try pid1_environ cat /proc/1/environ
try pid1_fds sh -c "ls -l /proc/1/fd/ | grep -q -- '->'"
try inherited_sockets sh -c "ls -l /proc/self/fd/ | grep -q socket"
try cgroup_paths_visible sh -c "grep -v ':/\$' /proc/self/cgroup | grep -q ."
try cgroup_fs_visible sh -c "ls /sys/fs/cgroup | grep -q ."
try load_module insmod /nonexistent.ko
echo done
