#!/usr/bin/env bash
# Builds graft with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# the in-process unit suites (tests/framework, tests/plugins) under them. Any ASan or UBSan
# report fails its suite. Usage:
#   bash tools/sanitize.sh [--no-build] [--jobs N] [SUITE...]    (default: every unit suite)
#   GRAFT_ASAN_DIR=dir (default build-asan), GRAFT_SANITIZE (default address,undefined)
# The build is niced; the suites run one at a time unless --jobs says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${GRAFT_ASAN_DIR:-build-asan}
SANITIZE=${GRAFT_SANITIZE:-address,undefined}
JOBS=1
BUILD=1
SUITES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --jobs) JOBS=$2; shift ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    *) SUITES+=("$1") ;;
  esac
  shift
done
# The suites that run graft in-process (the CLI suites run the binary end to end).
if [ ${#SUITES[@]} -eq 0 ]; then
  SUITES=(test_recipe test_registry test_model test_serialize test_weights test_surgery
          test_training_plan test_loader test_trainer test_checkpoint test_small_nets
          test_torchvision_backbones test_initializers test_backbone_roundtrip test_schedulers
          test_metrics test_data)
fi

if [ "$BUILD" = 1 ]; then
  bash tools/setup.sh
  GENERATOR=()
  command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/Makefile" ] && GENERATOR=(-G Ninja)
  # -O1: quicker to build than Release's -O3, and what the sanitizers' documentation advises.
  nice -n 19 cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DGRAFT_BUILD_TESTS=ON \
    -DGRAFT_SANITIZE="$SANITIZE" >/dev/null
  nice -n 19 cmake --build "$BUILD_DIR" --parallel "${GRAFT_BUILD_JOBS:-2}" --target "${SUITES[@]}"
fi

SUPP=$ROOT/tools/sanitizers
# detect_leaks: LeakSanitizer runs too (suppressions for LibTorch's process-lifetime
# allocations in lsan.supp). halt_on_error: the first UBSan report fails the suite.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1:suppressions=$SUPP/asan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$SUPP/ubsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SUPP/lsan.supp:print_suppressions=0}
# LibTorch's intra-op threads: two cores here, and the runs are measured beside other work.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

regex="^($(IFS='|'; echo "${SUITES[*]}"))\$"
cd "$BUILD_DIR"
start=$(date +%s)
set +e
nice -n 19 ctest -R "$regex" --output-on-failure --parallel "$JOBS" 2>&1 | tee ctest-sanitize.log
rc=${PIPESTATUS[0]}
set -e
echo "sanitize: ${SANITIZE} over ${#SUITES[@]} suites in $(( $(date +%s) - start )) s (log: $BUILD_DIR/ctest-sanitize.log)"
exit "$rc"
