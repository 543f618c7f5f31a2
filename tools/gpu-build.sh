#!/usr/bin/env bash
# Builds graft on a GPU machine against the LibTorch inside its pip PyTorch 2.x (CUDA),
# with the other libraries taken from Debian .deb files extracted into the build dir
# (such a machine has no package registry; make the .debs here with tools/gpu-debs.sh).
#
#   bash tools/gpu-build.sh [DEB_DIR] [CMAKE ARGS...]    (DEB_DIR default third_party/debs)
#   env: PYTHON (the interpreter with torch; default python3), GRAFT_BUILD_DIR (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEB_DIR=third_party/debs
if [[ $# -gt 0 && $1 != -* ]]; then
  DEB_DIR=$1
  shift
fi
BUILD_DIR=${GRAFT_BUILD_DIR:-build-gpu}

TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())'

ROOT="$PWD/$BUILD_DIR/debroot"
if compgen -G "$DEB_DIR/*.deb" >/dev/null; then
  mkdir -p "$ROOT"
  for deb in "$DEB_DIR"/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  echo "extracted $(ls "$DEB_DIR"/*.deb | wc -l) .deb files into $ROOT"
else
  echo "no .deb files in $DEB_DIR: using the machine's own libraries" >&2
fi
LIBDIR="$ROOT/usr/lib/x86_64-linux-gnu"

GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
# CMAKE_POLICY_VERSION_MINIMUM: Debian's package config files predate CMake 4.
# NCCL's header for ProcessGroupNCCL.hpp: the nvidia-nccl wheel that pip's PyTorch depends on
NCCL_INCLUDE=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGRAFT_NCCL_INCLUDE_DIR="$NCCL_INCLUDE" \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr;$LIBDIR/cmake" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_BUILD_RPATH="$LIBDIR" \
  -DGRAFT_BUILD_TESTS="${GRAFT_BUILD_TESTS:-OFF}" "$@"
KEEP_GOING=()
[[ ${GRAFT_KEEP_GOING:-0} == 1 && ${#GENERATOR[@]} -gt 0 ]] && KEEP_GOING=(-- -k 0)
cmake --build "$BUILD_DIR" --parallel "$(nproc)" "${KEEP_GOING[@]}"
"$BUILD_DIR/bin/graft" version
