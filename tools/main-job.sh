#!/usr/bin/env bash
# Set-up, build, and the main job on the default recipe (the README's first command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh -DGRAFT_BUILD_TESTS=OFF
RECIPE=${1:-recipes/fashion_mnist_cnn.yaml}
GRAFT=${GRAFT_BUILD_DIR:-build}/bin/graft
"$GRAFT" check "$RECIPE"
"$GRAFT" inspect "$RECIPE"
