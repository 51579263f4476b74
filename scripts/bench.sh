#!/usr/bin/env bash
# Runs the benchmarks of issue 7 and writes docs/benchmarks.md:
#   1. filter cost inside the kernel (bpf_loop harnesses; xcap's three access
#      modes, hand-written C, the kernel's LD_ABS-style conversion);
#   2. capture overhead on a veth pair (trafgen; tcpdump, xcap --tc/--xdp,
#      bare pass programs) and startup time.
# Needs root, clang, trafgen, tcpdump, iproute2. Takes a few minutes.
# Options are passed to xcap-bench: --filters-only, --capture-only,
# --seconds N (capture window, default 5), --runs N (capture runs per
# setup, default 3), --prog-rounds N (rounds of the paired own-cost runs,
# default 7), --rate PPS (fixed offered rate of section 2b; default
# 150000, or less if a setup cannot sustain it), --setups A,B (only setups
# whose names contain A or B), --quick (short filter runs), --long-run
# (only the long capture of issue 21: --seconds, default 3600, at --rate,
# default 3000; see docs/long-runs.md).
# Environment: XCAP=PATH uses that xcap binary instead of building one;
# BENCH_OUT=FILE writes the report there instead of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p xcap-bench
xcap_args=()
if [ -n "${XCAP:-}" ]; then
  xcap_args=(--xcap "$XCAP")
# xcap's live capture may be unfinished; the report says so if it is.
elif cargo build --release -p xcap; then
  xcap_args=(--xcap "$CARGO_TARGET_DIR/release/xcap")
fi
out="${BENCH_OUT:-docs/benchmarks.md}"
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, Linux $(uname -r); clang $(clang --version | head -1 | grep -o '[0-9][0-9.]*' | head -1)."
  echo
  "$CARGO_TARGET_DIR/release/xcap-bench" "${xcap_args[@]}" "$@"
} > "$tmp"
mv "$tmp" "$out"
cat "$out"
