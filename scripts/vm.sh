#!/usr/bin/env bash
# Runs a command as root inside another Linux kernel, in a virtual machine
# whose root file system is this machine's own, shared read-only.
#
#   scripts/vm.sh KERNEL COMMAND [ARG...]
#
# KERNEL is a line of the matrix (6.1, 6.12, 5.10: see scripts/kernels.sh) or a
# folder with an unpacked Debian kernel package (boot/vmlinuz-*,
# lib/modules/*). The command runs in the current directory with the
# caller's PATH, so it can run the binaries and test executables built
# here; what it writes is discarded with the machine (a tmpfs overlay), so
# it reports through its output, which comes back on stdout (stdout and
# stderr merged). The exit status is the command's; 124 when it ran out of
# time, 125 when the machine never reported one.
#
# The guest has /proc, /sys, /dev, bpffs, debugfs, tracefs, cgroup2, lo up,
# /run/netns, an unlimited memlock limit, and the kernel's own modules
# (veth loads on demand). qemu runs with software emulation: this machine's
# /dev/kvm cannot boot stock kernels. About 9 s from start to command on an
# idle machine; commands run about 4 times slower than on the host.
#
# Environment: XCAP_VM_MEM (2G), XCAP_VM_CPUS (2), XCAP_VM_TIMEOUT seconds
# (1800), XCAP_VM_CONSOLE=1 shows the kernel's console on stderr.
# Needs qemu-system-x86, busybox-static, cpio and kmod (scripts/setup.sh).
set -euo pipefail

usage() { echo "usage: scripts/vm.sh KERNEL COMMAND [ARG...]" >&2; exit 2; }
(($# >= 2)) || usage
here=$(cd "$(dirname "$0")" && pwd)
kernel=$1
shift
if [[ -d $kernel ]]; then
  tree=$(cd "$kernel" && pwd)
else
  tree=$("$here/kernels.sh" dir "$kernel")
fi
vmlinuz=$(ls "$tree"/boot/vmlinuz-* 2>/dev/null | head -1)
[[ -n $vmlinuz ]] || { echo "vm: no boot/vmlinuz-* in $tree" >&2; exit 2; }
version=${vmlinuz##*/vmlinuz-}
virtiofsd=/usr/lib/qemu/virtiofsd
for tool in qemu-system-x86_64 busybox cpio modprobe "$virtiofsd"; do
  command -v "$tool" >/dev/null || {
    echo "vm: $tool is missing (scripts/setup.sh installs it)" >&2
    exit 2
  }
done

# The first stage, in an initramfs made once per kernel tree: load the
# modules that reach the shared root, mount it under a tmpfs overlay and
# hand over to scripts/vm-guest.sh on it.
initramfs=$tree/xcap-initramfs.cpio.gz
if [[ ! -s $initramfs || $0 -nt $initramfs ]]; then
  [[ -f $tree/lib/modules/$version/modules.dep ]] || depmod -b "$tree" "$version"
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,modules,proc,sys,dev,lower,upper,newroot}
  cp "$(command -v busybox)" "$root/bin/busybox"
  # virtiofs is built into 6.12 and a module in 6.1; --show-depends
  # prints nothing to insert for a built-in.
  for module in virtio_pci virtiofs overlay; do
    modprobe -d "$tree" -S "$version" --show-depends "$module" |
      awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r path; do
    name=$(basename "$path")
    name=${name%.xz}
    name=${name%.zst}
    case $path in
      *.xz) xz -dc "$path" ;;
      *.zst) zstd -dc "$path" ;;
      *) cat "$path" ;;
    esac >"$root/modules/$name"
    echo "$name" >>"$root/modules/order"
  done
  touch "$root/modules/order"
  cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod "/modules/$m" || echo "vm: insmod $m failed"; done
if ! mount -t virtiofs -o ro hostroot /lower; then
  echo "vm: cannot mount the shared root"; poweroff -f
fi
mount -t tmpfs -o size=50% tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot
for a in $(cat /proc/cmdline); do case $a in xcap.run=*) run=${a#xcap.run=};; esac; done
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot /bin/bash "$(cat "/newroot$run/guest")" "$run"
EOF
  chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initramfs.new"
  mv "$initramfs.new" "$initramfs"
  rm -rf "$root"
fi

# The run's folder, which the guest reads through the shared root.
run=$(mktemp -d "${TMPDIR:-/tmp}/xcap-vm.XXXXXX")
tag="xcap-vm-$(basename "$run")"
printf '%q ' "$@" >"$run/command"
pwd >"$run/cwd"
echo "$PATH" >"$run/path"
echo "$tree" >"$run/tree"
echo "$tag" >"$run/tag"
echo "$here/vm-guest.sh" >"$run/guest"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT

"$virtiofsd" --socket-path="$run/fs.sock" -o source=/ -o cache=auto \
  -o sandbox=chroot -o log_level=err >"$run/virtiofsd.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [[ -S $run/fs.sock ]] && break; sleep 0.05; done

mem=${XCAP_VM_MEM:-2G}
: >"$run/console"
timeout "${XCAP_VM_TIMEOUT:-1800}" qemu-system-x86_64 \
  -accel tcg -cpu max -smp "${XCAP_VM_CPUS:-2}" -m "$mem" \
  -object memory-backend-memfd,id=mem,size="$mem",share=on -numa node,memdev=mem \
  -chardev socket,id=fs,path="$run/fs.sock" -device vhost-user-fs-pci,chardev=fs,tag=hostroot \
  -nodefaults -no-user-config -display none -monitor none -no-reboot -serial stdio \
  -kernel "$vmlinuz" -initrd "$initramfs" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init xcap.run=$run" \
  </dev/null >>"$run/console" 2>&1 &
qemu=$!
pids+=($qemu)

# The command's output, as it comes: between the tag's BEGIN and END lines.
# A shell loop, not awk or tr: those read or write a pipe in blocks (mawk
# and tr did), which held a guest's output back until it ended.
tail -n +1 --pid="$qemu" -f "$run/console" 2>/dev/null | {
  on=0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line == "$tag END "* ]]; then
      on=0
    elif ((on)); then
      printf '%s\n' "$line"
    elif [[ $line == "$tag BEGIN"* ]]; then
      on=1
    elif [[ ${XCAP_VM_CONSOLE:-0} == 1 ]]; then
      printf '[console] %s\n' "$line" >&2
    fi
  done
}
status=0
wait "$qemu" || status=$?
rc=$(tr -d '\r' <"$run/console" | sed -n "s/^$tag END \([0-9]*\)$/\1/p" | tail -1)
if [[ -z $rc ]]; then
  if ((status == 124)); then
    echo "vm: Linux $version: no answer within ${XCAP_VM_TIMEOUT:-1800} s" >&2
    exit 124
  fi
  echo "vm: Linux $version: the machine stopped without reporting (qemu status $status); console:" >&2
  tr -d '\r' <"$run/console" | tail -n 20 >&2
  exit 125
fi
exit "$rc"
