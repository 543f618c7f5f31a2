#!/usr/bin/env bash
# On a GPU machine, after tools/gpu-build.sh: train recipes on CUDA and report. Each run's
# dir lands in $OUT (default gpu-runs/). Fashion-MNIST comes from $FASHION_MNIST (default
# third_party/fashion-mnist: the .gz files of Debian's dataset-fashion-mnist, copied there).
#   bash tools/gpu-runs.sh smoke|cnn|dp|resnet18|amp ...
set -uo pipefail
cd "$(dirname "$0")/.."
G=${GRAFT:-build-gpu/bin/graft}
OUT=${OUT:-gpu-runs}
DATA=(--set "data.dataset={name: fashion_mnist, root: ${FASHION_MNIST:-$PWD/third_party/fashion-mnist}}" --set data.workers=8 --progress 0)
run() {  # name recipe args...
  local name=$1 recipe=$2
  shift 2
  echo "== $name: graft train $recipe $*"
  local t0=$(date +%s.%N)
  "$G" train "$recipe" "${DATA[@]}" --run-dir "$OUT/$name" "$@" 2>"$OUT/$name.stderr" >/dev/null
  local rc=$?
  echo "rc $rc, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
  grep -E "^(test|stopped)|epoch [0-9]+/[0-9]+:|error|device" "$OUT/$name.stderr" | tail -25
}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for what in "$@"; do
  case $what in
    smoke) run smoke recipes/fashion_mnist_cnn.yaml --set trainer.device=cuda --set trainer.max_steps=30 ;;
    cnn) run cnn_cuda recipes/fashion_mnist_cnn.yaml --set trainer.device=cuda ;;
    cnn20) run cnn20_cuda recipes/fashion_mnist_cnn.yaml --set trainer.device=cuda --set trainer.epochs=20 ;;
    dp) run cnn_dp recipes/fashion_mnist_cnn.yaml --set "trainer.device=[cuda:0, cuda:0]" ;;
    amp) run cnn_bf16 recipes/fashion_mnist_cnn.yaml --set trainer.device=cuda --set trainer.amp=bf16 ;;
    resnet18) run resnet18_cuda recipes/fashion_mnist_resnet18.yaml --set trainer.device=cuda --set trainer.amp=bf16 ;;
    *) echo "unknown run $what" ;;
  esac
done
