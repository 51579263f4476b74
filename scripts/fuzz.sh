#!/usr/bin/env bash
# Runs each fuzz target (fuzz/: expr, cbpf, parsers) for a bounded time and
# fails on any finding. Usage:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [--skip-known]
# SECONDS_PER_TARGET defaults to 60. --skip-known sets XCAP_FUZZ_SKIP_KNOWN=1:
# findings already reported (fuzzgen/src/known.rs) are then not failures.
# Each target starts from the committed corpus fuzz/corpus/<target>/ (read
# only; new inputs go to a temporary directory); a finding is written to
# fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run -s none <target> <file>` in fuzz/, or add it to
# fuzz/corpus/<target>/ as regress-* for `cargo test -p xcap-fuzzgen`).
# Prints executions per second and total executions per target, from
# libFuzzer's final statistics.
set -uo pipefail

secs=60
for arg in "$@"; do
  case "$arg" in
    --skip-known) export XCAP_FUZZ_SKIP_KNOWN=1 ;;
    ''|*[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [--skip-known]" >&2; exit 2 ;;
    *) secs=$arg ;;
  esac
done

cd "$(dirname "$0")/../fuzz" || exit 2
targets=(expr cbpf parsers)
# No sanitizer: the targets are safe Rust plus an uninstrumented libpcap,
# so ASan would only cost speed; debug assertions stay on (cargo-fuzz's
# default), so arithmetic overflow panics.
FUZZ=(cargo +nightly fuzz)
"${FUZZ[@]}" build -s none || exit 2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  log="$work/$t.log"
  echo "fuzz: $t for ${secs}s" >&2
  "${FUZZ[@]}" run -s none "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  rc=$?
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1)
  eps=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "$log" | tail -1)
  cov=$(grep -oP '#[0-9]+\s+(DONE|pulse|NEW|REDUCE)\s+cov: \K[0-9]+' "$log" | tail -1)
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FINDING (exit $rc)"
    fail=1
    echo "---- $t: last lines of the libFuzzer log" >&2
    grep -v '^#[0-9]' "$log" | tail -60 >&2
  fi
  summary+=("$(printf '%-8s %10s exec/s %12s executions  cov %-6s %s' "$t" "${eps:-?}" "${runs:-?}" "${cov:-?}" "$status")")
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$fail"
