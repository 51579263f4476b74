#!/usr/bin/env bash
# Runs the kernel-facing tests inside each kernel of the matrix (see
# scripts/kernels.sh), in a virtual machine (scripts/vm.sh), with the test
# executables and the xcap binary built on this machine:
#
#   live capture (XDP, TC in/out/inout, counters), tracing (tracepoints,
#   fentry), the kernel engines' differential tests (every program and
#   mode, a sample of the packets: XCAP_MATRIX_SAMPLE, default every 4th),
#   the regressions, libpcap's apply tests, blob and object loading, and the
#   runner's kernel-against-VM tests.
#
#   scripts/kernel-matrix.sh [LINE...]     # default: every line (6.1 6.12 5.10)
#
# 5.10 is older than xcap supports: there only the refusal is tested
# (tests/tests/kernel_requirements.rs). Other lines run two guests, one per
# plan of scripts/matrix-guest.sh (main; trampolines);
# XCAP_MATRIX_PLANS="trampolines" (say) runs only the plans named;
# XCAP_MATRIX_TIMEOUT is the seconds a guest may take (3000: 6.1's main
# plan, the longest, took 1,699 and 1,766 s of it on CI's kind of machine).
#
# Every guest has one vCPU, and as many guests run at once as the host has
# cores (XCAP_MATRIX_JOBS). Under qemu's software emulation a guest with
# two vCPUs breaks where the kernel patches its own code while the other
# vCPU runs it: trampolines attached second are never called, and with
# two such guests on two cores 6.12 panicked inside a just-patched static
# key and 6.1 soft-locked. One vCPU cannot see half-patched code, and a
# guest keeps about one host core busy anyway (the tests mostly wait on
# one process at a time), so one-vCPU guests side by side use the cores
# that two-vCPU guests one after another left idle.
#
# Prints each test binary's results as cargo does (so scripts/test.sh counts
# them) and, per kernel, one line for the test report ($XCAP_REPORT): what
# ran and what matched. Exits non-zero when a test failed in any kernel or
# a kernel could not be run. Builds nothing: run `cargo test --release
# --no-run` and `cargo build --release -p xcap` first (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

lines=("$@")
((${#lines[@]})) || read -ra lines <<<"$(scripts/kernels.sh lines)"

# Test executable, the folder cargo runs it in, per test target.
exes=$(mktemp "${TMPDIR:-/tmp}/xcap-matrix-exes.XXXXXX")
trap 'rm -f "$exes"' EXIT
cargo test --workspace --release --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"], os.path.dirname(m["manifest_path"]))
' >"$exes"
xcap=${CARGO_TARGET_DIR:-target}/release/xcap
[[ -x $xcap ]] || { echo "kernel-matrix: $xcap is not built" >&2; exit 2; }
# The attribution tests' traffic program (cargo test --no-run builds it).
talker=${CARGO_TARGET_DIR:-target}/release/examples/talker
[[ -x $talker ]] || { echo "kernel-matrix: $talker is not built" >&2; exit 2; }

# The guests read the executables through the shared root while they run
# for minutes: a build here meanwhile would replace them (stale file
# handles in the guest). Hard links keep this run's copies.
snapshot=$(mktemp -d "${CARGO_TARGET_DIR:-target}/kernel-matrix-bin.XXXXXX")
snapshot=$(cd "$snapshot" && pwd)
trap 'rm -f "$exes"; rm -rf "$snapshot"' EXIT
link_or_copy() { ln "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
link_or_copy "$xcap" "$snapshot/xcap"
xcap=$snapshot/xcap
link_or_copy "$talker" "$snapshot/talker"
talker=$snapshot/talker
while read -r target exe dir; do
  link_or_copy "$exe" "$snapshot/$(basename "$exe")"
  echo "$target $snapshot/$(basename "$exe") $dir"
done <"$exes" >"$exes.snap"
mv "$exes.snap" "$exes"

# One guest run: kernel line $1, plan $2 (see matrix-guest.sh), output in
# $3. Prints the summary line and adds it, with the tests' report
# lines, to the test report.
run_guest() {
  local line=$1 plan=$2 out=$3 status seconds summary start=$SECONDS
  echo "== kernel matrix: Linux $line, plan $plan (scripts/vm.sh $line), output in $out"
  set +e
  XCAP_VM_CPUS=1 XCAP_VM_TIMEOUT=${XCAP_MATRIX_TIMEOUT:-3000} scripts/vm.sh "$line" \
    env XCAP_BIN="$xcap" XCAP_TALKER_BIN="$talker" XCAP_MATRIX_SAMPLE="${XCAP_MATRIX_SAMPLE:-4}" \
    XCAP_MATRIX_PLAN="$plan" bash scripts/matrix-guest.sh "$exes" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  seconds=$((SECONDS - start))
  summary=$(sed -n 's/^matrix: //p' "$out" | tail -1)
  if [[ -z $summary ]]; then
    summary="did not finish (scripts/vm.sh status $status)"
    status=1
  fi
  while IFS= read -r report; do
    [[ -n ${XCAP_REPORT:-} ]] && echo "  [$line] $report" >>"$XCAP_REPORT"
  done < <(sed -n 's/^report: //p' "$out")
  [[ -n ${XCAP_REPORT:-} ]] && echo "kernel $summary ($plan plan), in ${seconds} s" >>"$XCAP_REPORT"
  echo "kernel $summary ($plan plan), in ${seconds} s"
  return "$status"
}

# The guests to run, "line plan output", the longest first (6.1's older
# verifier makes its main plan the longest), so the short ones fill in.
guests=() others=()
for line in "${lines[@]}"; do
  out=${CARGO_TARGET_DIR:-target}/kernel-matrix-$line
  if [[ $line == 5.10 ]]; then
    others+=("$line old $out.txt")
    continue
  fi
  for plan in ${XCAP_MATRIX_PLANS:-main trampolines}; do
    case $plan in
      main) guests+=("$line main $out.txt") ;;
      trampolines) others+=("$line trampolines $out-trampolines.txt") ;;
      *) echo "kernel-matrix: unknown plan '$plan'" >&2; exit 2 ;;
    esac
  done
done
guests+=("${others[@]}")

# XCAP_MATRIX_JOBS guests at once, one per host core by default. One at a
# time, a guest's output comes as it runs; several, each guest's whole
# when it ends.
jobs=${XCAP_MATRIX_JOBS:-$(nproc)}
failed=0
if ((jobs <= 1)); then
  for guest in "${guests[@]}"; do
    read -r line plan out <<<"$guest"
    run_guest "$line" "$plan" "$out" || failed=1
  done
  exit "$failed"
fi
declare -A shown=()
finish_one() {
  local pid status=0
  wait -n -p pid || status=$?
  cat "${shown[$pid]}"
  rm -f "${shown[$pid]}"
  unset "shown[$pid]"
  ((status == 0)) || failed=1
}
for guest in "${guests[@]}"; do
  read -r line plan out <<<"$guest"
  while ((${#shown[@]} >= jobs)); do finish_one; done
  echo "== kernel matrix: Linux $line, plan $plan, started; its output comes when it ends"
  run_guest "$line" "$plan" "$out" >"$out.shown" 2>&1 &
  shown[$!]=$out.shown
done
while ((${#shown[@]})); do finish_one; done
exit "$failed"
