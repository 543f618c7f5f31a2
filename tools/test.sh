#!/usr/bin/env bash
# Set-up, build and the whole test suite (the README's test command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh -DGRAFT_BUILD_TESTS=ON
cd "${GRAFT_BUILD_DIR:-build}"
ctest --output-on-failure --parallel "$(nproc)"
