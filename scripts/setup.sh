#!/usr/bin/env bash
# Installs everything xcap needs on a fresh Debian 12 machine, idempotently:
# Debian packages (libpcap, clang, kernel tools, tcpdump/tshark for the
# differential tests, qemu for the kernel matrix), nightly rust-src and
# bpf-linker built against LLVM 22 (for the aya-ebpf capture programs), and
# the matrix's kernels (scripts/kernels.sh). Quick when everything is present.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

APT_PACKAGES=(
  libpcap-dev pkg-config clang llvm lld bpftool iproute2 tcpdump tshark
  nftables netsniff-ng iputils-ping netcat-openbsd
  llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev
  # The kernel matrix (scripts/vm.sh, scripts/kernel-matrix.sh).
  qemu-system-x86 qemu-system-common busybox-static cpio kmod zstd xz-utils
  # --xdp-hook's tests: xdp-loader attaches programs through libxdp's
  # dispatcher (tests/tests/xdp_hook.rs).
  xdp-tools
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to nightly (eBPF builds need build-std)"
  rustup component add rust-src --toolchain nightly
fi

if ! command -v bpf-linker >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/bpf-linker" ]; then
  log "building bpf-linker against LLVM 22 (about a minute)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker \
    --no-default-features --features llvm-22
fi
log "ready"

# cargo-fuzz, for fuzz/ and scripts/fuzz.sh (issue 6).
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The kernels of the test matrix (Debian's 6.1, 6.12 and 5.10), cached.
scripts_dir=$(cd "$(dirname "$0")" && pwd)
"$scripts_dir/kernels.sh" fetch
