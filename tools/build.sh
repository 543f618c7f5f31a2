#!/usr/bin/env bash
# Configures and builds graft in ./build (or $GRAFT_BUILD_DIR). Incremental: reruns are
# quick, and ccache keeps even a fresh build directory cheap after the first build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${GRAFT_BUILD_DIR:-build}
GENERATOR=()
command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/Makefile" ] && GENERATOR=(-G Ninja)
cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
