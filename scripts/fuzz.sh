#!/usr/bin/env bash
# Builds the libFuzzer targets of Tests/Fuzz (-sanitize=fuzzer,address) and runs each for SECONDS, one at a time,
# starting from the committed seed corpus; prints executions, coverage (cov/ft) and corpus size per target, and
# exits non-zero when any target crashes (the input is kept under Tests/Fuzz/.build/artifacts/TARGET/).
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      e.g. scripts/fuzz.sh FuzzFrames 600, scripts/fuzz.sh all 20
# Environment: FUZZ_FLAGS (extra libFuzzer flags), FUZZ_NICE (default 19), FUZZ_KEEP_CORPUS=1 to keep the corpus
# grown by earlier runs (Tests/Fuzz/.build/corpus/TARGET) instead of starting from the seeds, FUZZ_SKIP_BUILD=1 to
# run the binaries already built.
# Every swift invocation takes the shared build lock (/tmp/r2ec-swift.lock) when flock exists.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(FuzzFrames FuzzProto FuzzConnection FuzzDatasets FuzzCheckpoint FuzzTokenizer)
which="${1:-all}"
seconds="${2:-60}"
if [[ "$which" == all ]]; then selected=("${TARGETS[@]}"); else selected=("$which"); fi
for t in "${selected[@]}"; do
  [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (one of: ${TARGETS[*]}, all)" >&2; exit 2; }
done

PKG=Tests/Fuzz
BUILD="$PKG/.build"
lock=()
command -v flock >/dev/null && lock=(flock /tmp/r2ec-swift.lock)

start=$(date +%s)
[[ "${FUZZ_SKIP_BUILD:-0}" == 1 ]] || echo "fuzz.sh: building ${selected[*]} (-sanitize=fuzzer,address)"
# SwiftPM builds one --product per call; the calls share the build cache.
for t in "${selected[@]}"; do
  [[ "${FUZZ_SKIP_BUILD:-0}" == 1 ]] && break
  "${lock[@]}" swift build --package-path "$PKG" -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld \
    -Xcc -fsanitize=fuzzer-no-link,address --product "$t" 2>&1 | grep -E "error|warning: unable|Compiling|Build of" \
    | grep -v "^\[.*Compiling" || true
done
for t in "${selected[@]}"; do
  [[ -x "$BUILD/debug/$t" ]] || { echo "fuzz.sh: no $BUILD/debug/$t (build failed?)" >&2; exit 1; }
done
[[ "${FUZZ_SKIP_BUILD:-0}" == 1 ]] || echo "fuzz.sh: built in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}"
export SWIFT_BACKTRACE=enable=no  # the runtime backtracer trips ASan after a Swift trap
export LSAN_OPTIONS="suppressions=$PWD/$PKG/lsan.supp:print_suppressions=0"
status=0
printf '%-16s %10s %9s %8s %8s %10s  %s\n' target seconds execs exec/s cov ft result
for t in "${selected[@]}"; do
  corpus="$BUILD/corpus/$t"
  artifacts="$BUILD/artifacts/$t"
  log="$BUILD/logs/$t.log"
  [[ "${FUZZ_KEEP_CORPUS:-0}" == 1 ]] || rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # Each run merges the committed seeds in; new inputs go to the working corpus only.
  set +e
  nice -n "${FUZZ_NICE:-19}" "$BUILD/debug/$t" "$corpus" "$PKG/corpus/$t" -max_total_time="$seconds" \
    -artifact_prefix="$artifacts/" -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    ${FUZZ_FLAGS:-} >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
  execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "${done_line%%[[:space:]]*}")
  persec=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+' || echo '?')
  if [[ $rc == 0 ]]; then result=ok; else result="CRASH (exit $rc, see $log)"; status=1; fi
  printf '%-16s %10s %9s %8s %8s %10s  %s\n' "$t" "$seconds" "${execs#\#}" "$persec" "$cov" "$ft" "$result"
  if [[ $rc != 0 ]]; then
    grep -E 'ERROR|SUMMARY|Fatal error|Precondition|panic|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done
exit $status
