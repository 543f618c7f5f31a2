#!/usr/bin/env bash
# Set-up, build, and the main job: train the default recipe end to end (the README's
# first command). Extra arguments go to `graft train` (e.g. --set trainer.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh -DGRAFT_BUILD_TESTS=OFF
RECIPE=${GRAFT_RECIPE:-recipes/fashion_mnist_cnn.yaml}
GRAFT=${GRAFT_BUILD_DIR:-build}/bin/graft
"$GRAFT" check "$RECIPE"
"$GRAFT" train "$RECIPE" "$@"
