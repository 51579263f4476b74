#!/bin/bash
# The second stage of scripts/vm.sh, run as PID 1 inside the virtual
# machine on the shared root: makes the system the tests expect, runs the
# command of the run folder given as $1, reports its status and powers off.
run=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
tree=$(cat "$run/tree")
version=$(uname -r)

mkdir -p /dev/pts /dev/shm /sys/fs/bpf /tmp "/lib/modules/$version"
mount -t devpts devpts /dev/pts
# devtmpfs has no /dev/fd: bash's process substitution needs it.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run && mkdir -p /run/netns
# The guest kernel's modules where modprobe looks (veth is a module in 6.1).
mount --bind "$tree/lib/modules/$version" "/lib/modules/$version"
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ip link set lo up
ulimit -l unlimited

tag=$(cat "$run/tag")
PATH=$(cat "$run/path")
export PATH HOME=/root TERM=dumb
cd "$(cat "$run/cwd")" || cd /
echo "$tag BEGIN"
bash -c "$(cat "$run/command")" </dev/null 2>&1
echo "$tag END $?"
sync
echo o >/proc/sysrq-trigger
sleep 30
