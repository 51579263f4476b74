#!/usr/bin/env bash
# Inside a kernel of the matrix (scripts/kernel-matrix.sh starts it through
# scripts/vm.sh): runs the kernel-facing test executables listed in $1
# (lines "target executable folder"), prints cargo's result lines, the test
# report lines prefixed "report: " and one summary line "matrix: ...".
set -uo pipefail
exes=$1

# The test targets that meet the kernel, each with its test harness
# arguments. The differential tests take every $XCAP_MATRIX_SAMPLE-th
# packet. Live capture leaves out, by name, the tests of user space alone
# (printing, reader wakeups, ordering, promiscuity), which behave the same
# on every kernel and run on the host; every attach path, hook, direction
# and counter test runs here. Tests of BPF trampolines (xdp_hook, and the
# fentry/fexit tests of trace_capture, attribution and follow_packet) have a
# plan of their own (XCAP_MATRIX_PLAN=trampolines), a second guest, so the
# matrix's guests are of sizes that share the host's cores well
# (kernel-matrix.sh says why every guest has one vCPU).
plan=(
  "kernel_requirements"
  "live_capture --skip idle_readers_sleep --skip packets_from_every_cpu --skip promiscuous_mode --skip printed_lines"
  "any_interface"
  "trace_capture --skip fentry_"
  "follow_packet --skip _fentry_"
  "attribution --skip fentry_"
  "differential"
  "protochain"
  "regressions"
  "apply"
  "load"
  "blob"
  "vm_vs_kernel"
  "kernel_limits"
  "engines"
)

case ${XCAP_MATRIX_PLAN:-main} in
  main) ;;
  # Hooks patched into running code: XDP programs and kernel functions.
  trampolines) plan=(xdp_hook "trace_capture fentry_" "attribution fentry_" "follow_packet _fentry_") ;;
  # A kernel older than xcap supports: the refusal alone.
  old) plan=(kernel_requirements) ;;
  *) echo "matrix-guest: unknown plan '$XCAP_MATRIX_PLAN'" >&2; exit 2 ;;
esac

export XCAP_REPORT=/tmp/xcap-matrix-report
export XCAP_DIFF_SAMPLE=${XCAP_MATRIX_SAMPLE:-4}
: >"$XCAP_REPORT"
passed=0 failed=0 counts=()
for entry in "${plan[@]}"; do
  read -ra words <<<"$entry"
  target=${words[0]}
  read -r exe dir < <(awk -v t="$target" '$1 == t { print $2, $3 }' "$exes")
  if [[ -z ${exe:-} ]]; then
    echo "matrix-guest: no test executable for $target"
    failed=$((failed + 1))
    counts+=("$target missing")
    continue
  fi
  echo "     Running $target in Linux $(uname -r)"
  log=/tmp/xcap-matrix-$target.log
  start=$SECONDS
  (cd "$dir" && "$exe" --test-threads 2 "${words[@]:1}") >"$log" 2>&1
  echo "     Finished $target in $((SECONDS - start)) s"
  # Failures whole, the rest as cargo's summary lines.
  grep -E '^test .*(FAILED|ok)$|^test result:' "$log" | grep -v ' ok$'
  if grep -q '^failures:' "$log"; then
    sed -n '/^failures:/,/^test result:/p' "$log" | head -200
  fi
  result=$(grep '^test result:' "$log" | tail -1)
  if [[ -z $result ]]; then
    echo "matrix-guest: $target did not finish:"
    tail -30 "$log"
    failed=$((failed + 1))
    counts+=("$target crashed")
    continue
  fi
  p=$(awk '{ print $4 }' <<<"$result")
  f=$(awk '{ print $6 }' <<<"$result")
  passed=$((passed + p))
  failed=$((failed + f))
  counts+=("$target $p/$((p + f))")
done
sed 's/^/report: /' "$XCAP_REPORT"
joined=$(printf '%s, ' "${counts[@]}")
echo "matrix: $(uname -r): $passed passed, $failed failed (${joined%, })"
((failed == 0))
