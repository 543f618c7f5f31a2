#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, ASan + UBSan, into build-fuzz/) and
# runs each for a bounded time, starting from its seed corpus (tests/fuzz/corpus/<harness>)
# and the regression inputs of fixed bugs (tests/fuzz/regressions/<harness>).
#
#   bash tools/fuzz.sh                      every harness, 60 s each
#   bash tools/fuzz.sh --time 600 fuzz_recipe   one harness, 10 minutes (or GRAFT_FUZZ_TIME=600)
#   bash tools/fuzz.sh --replay             no fuzzing: each harness runs its seeds and
#                                           regression inputs once (what ctest -L fuzz does)
#   --no-build                              use build-fuzz as it is
#   GRAFT_FUZZ_MAX_LEN (default 4096): the largest input generated (longer seeds are cut)
#
# A crashing input (crash, sanitizer report, leak, timeout, out-of-memory) is kept as
# build-fuzz/crashes/<harness>/<kind>-<sha1> and named in the output; new coverage found
# goes to build-fuzz/corpus/<harness>/ and is kept between runs. Exit status 1 when any
# harness crashed. Everything runs under `nice -n 19`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${GRAFT_FUZZ_DIR:-build-fuzz}
TIME=${GRAFT_FUZZ_TIME:-60}
MAX_LEN=${GRAFT_FUZZ_MAX_LEN:-4096}
BUILD=1
REPLAY=0
ALL=(fuzz_torch_file fuzz_recipe fuzz_idx fuzz_cifar fuzz_decode)
HARNESSES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) TIME=$2; shift ;;
    --replay) REPLAY=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    fuzz_*) HARNESSES+=("$1") ;;
    *) echo "fuzz.sh: unknown argument $1 (harnesses: ${ALL[*]})" >&2; exit 2 ;;
  esac
  shift
done
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=("${ALL[@]}")

if [ "$BUILD" = 1 ]; then
  bash tools/setup.sh
  # clang, its libFuzzer / sanitizer runtimes, the symbolizer, and the OpenMP runtime
  # clang links the fused SGD kernel against.
  PACKAGES=(clang libclang-rt-14-dev llvm-14 libomp-14-dev)
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "fuzz: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  GENERATOR=()
  command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/Makefile" ] && GENERATOR=(-G Ninja)
  nice -n 19 cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
    -DGRAFT_BUILD_TESTS=OFF -DGRAFT_FUZZ=ON -DGRAFT_SANITIZE=address,undefined >/dev/null
  nice -n 19 cmake --build "$BUILD_DIR" --parallel "${GRAFT_BUILD_JOBS:-2}" --target graft_fuzz
fi

SUPP=$ROOT/tools/sanitizers
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:suppressions=$SUPP/asan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$SUPP/ubsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SUPP/lsan.supp:print_suppressions=0}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || echo /usr/lib/llvm-14/bin/llvm-symbolizer)}
export OMP_NUM_THREADS=1
# Tiny inputs must not make graft allocate gigabytes, nor take seconds.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10)

inputs_of() {  # the seed and regression folders of a harness that exist
  local d
  for d in "$ROOT/tests/fuzz/corpus/$1" "$ROOT/tests/fuzz/regressions/$1"; do
    [ -d "$d" ] && echo "$d"
  done
  return 0
}

status=0
summary=()
for h in "${HARNESSES[@]}"; do
  bin=$BUILD_DIR/bin/$h
  [ -x "$bin" ] || { echo "fuzz: $bin is not built" >&2; exit 2; }
  mapfile -t seeds < <(inputs_of "$h")
  log=$BUILD_DIR/logs/$h.log
  mkdir -p "$BUILD_DIR/logs"
  if [ "$REPLAY" = 1 ]; then
    echo "== $h: replaying ${seeds[*]}"
    if nice -n 19 "$bin" -runs=0 "${LIMITS[@]}" "${seeds[@]}" >"$log" 2>&1 </dev/null; then
      summary+=("$(printf '%-16s replay ok   %s inputs' "$h" "$(find "${seeds[@]}" -type f | wc -l)")")
    else
      tail -40 "$log"
      summary+=("$(printf '%-16s replay FAILED (log: %s)' "$h" "$log")")
      status=1
    fi
    continue
  fi
  corpus=$BUILD_DIR/corpus/$h
  crashes=$BUILD_DIR/crashes/$h
  mkdir -p "$corpus" "$crashes"
  echo "== $h: fuzzing for ${TIME} s (log: $log)"
  start=$(date +%s)
  set +e
  nice -n 19 "$bin" "${LIMITS[@]}" -max_total_time="$TIME" -max_len="$MAX_LEN" -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" >"$log" 2>&1 </dev/null
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then  # a crash ends the run before the final stats
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  execs=${execs:-0}
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$rc" -ne 0 ]; then
    status=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|==ERROR|SUMMARY' "$log" || true
    echo "   crashing input: ${artifact:-(none written; see $log)}"
    summary+=("$(printf '%-16s %5s s %10s execs  cov %-6s CRASH %s' "$h" "$secs" "$execs" "${cov:-?}" "${artifact:-$log}")")
  else
    summary+=("$(printf '%-16s %5s s %10s execs  cov %-6s ok' "$h" "$secs" "$execs" "${cov:-?}")")
  fi
done
echo
echo "fuzz summary ($( [ "$REPLAY" = 1 ] && echo replay || echo "${TIME} s per harness")):"
printf '  %s\n' "${summary[@]}"
exit "$status"
