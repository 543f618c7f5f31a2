#!/usr/bin/env bash
# graft against PyTorch in Python (Debian's /usr/bin/python3: torch 1.13, torchvision
# 0.14, the LibTorch graft links), side by side in one run: training throughput (small
# CNN and ResNet-18 on Fashion-MNIST, batch 128 and 16), the loader against preloaded
# tensors, the ImageNet-style JPEG pipeline (a generated folder of 500x375 JPEGs through
# RandomResizedCrop 224, 1 and 2 workers), ResNet-50 checkpoint save/load, evaluation,
# start-up, plugin scan, resume, peak memory.
# A table on stdout, every value in a JSON file. See README.md, "Benchmarks".
#
#   bash tools/bench.sh [--out FILE] [--repeats N] [--threads N] [--smoke] [--only GROUPS] ...
#
# Set-up and build first (tools/setup.sh, then the graft, graft-bench and plugin targets in
# $GRAFT_BUILD_DIR, default build/); --no-build skips both. Other options go to
# tools/bench/bench.py (--help lists them). About 18 minutes on 2 cores; --smoke: < 1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${GRAFT_BUILD_DIR:-build}
build=1
args=()
for a in "$@"; do
  if [ "$a" = "--no-build" ]; then build=0; else args+=("$a"); fi
done
if [ "$build" = 1 ]; then
  bash tools/setup.sh >&2
  GENERATOR=()
  command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/Makefile" ] && GENERATOR=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target graft-bench >&2
fi
exec /usr/bin/python3 tools/bench/bench.py --graft "$BUILD_DIR/bin/graft" --bench "$BUILD_DIR/bin/graft-bench" "${args[@]}"
