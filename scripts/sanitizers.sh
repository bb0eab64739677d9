#!/usr/bin/env bash
# Builds and runs the Swift unit and integration tests (every XCTest target; not the Python client suite) under
# AddressSanitizer and/or ThreadSanitizer, each in its own scratch folder (.build-asan, .build-tsan), and fails on
# any sanitizer report or test failure. Prints a report count and the first report's summary per sanitizer.
#   scripts/sanitizers.sh [address] [thread]      (both when none is named)
# Environment: SANITIZER_FILTER (a `swift test --filter` expression, to run a subset), SANITIZER_SKIP
# (a `swift test --skip` expression; default: none), SANITIZER_TRAITS=default (build with the package's default traits,
# i.e. with the gRPC door; default: --disable-default-traits).
# Every swift invocation takes the shared build lock (/tmp/r2ec-swift.lock) when flock exists.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers=("$@")
[[ ${#sanitizers[@]} -gt 0 ]] || sanitizers=(address thread)
lock=()
command -v flock >/dev/null && lock=(flock /tmp/r2ec-swift.lock)
filter=()
[[ -n "${SANITIZER_FILTER:-}" ]] && filter+=(--filter "$SANITIZER_FILTER")
[[ -n "${SANITIZER_SKIP:-}" ]] && filter+=(--skip "$SANITIZER_SKIP")
# Without the GRPC trait: the gRPC front door's dependencies (swift-nio, swift-nio-ssl's BoringSSL, swift-crypto,
# grpc-swift) would add about 10 CPU-minutes to each sanitizer build; the door is tested through grpcio in the
# Python suite instead. SANITIZER_TRAITS=default keeps it in.
traits=(--disable-default-traits)
[[ "${SANITIZER_TRAITS:-}" == default ]] && traits=()

# The runtime's backtracer is not sanitizer-clean; the sanitizers print their own stacks.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:detect_stack_use_after_return=0}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:history_size=4:suppressions=$PWD/scripts/tsan.supp}"

status=0
for s in "${sanitizers[@]}"; do
  case "$s" in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    *) echo "sanitizers.sh: unknown sanitizer $s (address, thread)" >&2; exit 2 ;;
  esac
  log="$scratch/sanitizer-tests.log"
  start=$(date +%s)
  echo "sanitizers.sh: building the tests with --sanitize=$s in $scratch"
  "${lock[@]}" swift build --build-tests --sanitize="$s" --scratch-path "$scratch" "${traits[@]}" 2>&1 | grep -E "error:|Build complete" || true
  built=$(date +%s)
  mkdir -p "$scratch"
  set +e
  "${lock[@]}" swift test --skip-build --sanitize="$s" --scratch-path "$scratch" "${traits[@]}" "${filter[@]}" >"$log" 2>&1
  rc=$?
  set -e
  reports=$(grep -cE '^(WARNING: ThreadSanitizer|==[0-9]+==ERROR: (Address|Leak)Sanitizer)' "$log" || true)
  # The whole run's XCTest summary: the largest count (suites print their own; a skip count may sit in the line).
  tests=$(grep -oE 'Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?' "$log" | sort -k2,2n | tail -1 || true)
  echo "sanitizers.sh: $s: build $((built - start)) s, tests $(( $(date +%s) - built )) s; ${tests:-no XCTest summary}; $reports sanitizer report(s); exit $rc"
  if [[ $rc != 0 || $reports != 0 ]]; then
    status=1
    grep -E '^SUMMARY: |error: |failed \(' "$log" | sort | uniq -c | sort -rn | head -20 | sed 's/^/    /'
    echo "    full log: $log"
  fi
done
exit $status
