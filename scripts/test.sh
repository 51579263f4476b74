#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh) and runs every test: unit tests,
# the differential tests over ../shared/corpus (VM and kernel, all access
# modes), injector and blob loading, the CLI against tcpdump, live capture
# in private network namespaces, the fuzz corpus replay, and then each fuzz
# target for a bounded time. Kernel tests need root and fail (never skip)
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

export XCAP_REPORT="$PWD/target/test-report.txt"
mkdir -p target
: > "$XCAP_REPORT"

# Test binaries run one at a time: live-capture tests own network
# namespaces, and the machine has two cores for the rest.
cargo test --workspace --release -- --test-threads 2

if [ -x scripts/fuzz.sh ]; then
  scripts/fuzz.sh "${XCAP_FUZZ_SECONDS:-60}"
fi

echo
echo "== what the tests compared =="
cat "$XCAP_REPORT"
