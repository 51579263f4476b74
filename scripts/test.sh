#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh) and runs every test: unit tests,
# the differential tests over ../shared/corpus (VM and kernel, all access
# modes), injector and blob loading, the CLI against tcpdump, live capture
# in private network namespaces, the fuzz corpus replay, the kernel-facing
# tests again in Linux 6.1 and 6.12 virtual machines (scripts/kernel-matrix.sh),
# and then each fuzz target for a bounded time. Kernel tests need root and
# fail (never skip) without it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

export XCAP_REPORT="$PWD/target/test-report.txt"
mkdir -p target
: > "$XCAP_REPORT"

# The code stays formatted and free of lints (workspace lints in Cargo.toml).
cargo fmt --all --check
cargo clippy --workspace --all-targets --release --quiet -- -D warnings

# Cargo runs test binaries one at a time; live-capture tests serialise
# themselves (they own network namespaces), the rest use both cores.
log="$PWD/target/test-output.txt"
cargo test --workspace --release -- --test-threads 2 2>&1 | tee "$log"

# The crates' documentation builds without a warning (broken links too).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# The kernel-facing tests again inside Debian's 6.1 and 6.12 kernels, and
# the refusal of an older one (5.10), each in a virtual machine.
cargo build --release --quiet -p xcap
scripts/kernel-matrix.sh 2>&1 | tee -a "$log"

if [ -x scripts/fuzz.sh ]; then
  scripts/fuzz.sh "${XCAP_FUZZ_SECONDS:-60}"
fi

echo
echo "== what the tests compared =="
cat "$XCAP_REPORT"

# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
