#!/usr/bin/env bash
# Run here (Debian bookworm): downloads the Debian packages graft needs besides LibTorch
# into third_party/debs/, for tools/gpu-build.sh on a machine without a package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-third_party/debs}
PACKAGES=(libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 nlohmann-json3-dev
          libcli11-dev libboost1.74-dev libboost-filesystem1.74-dev libboost-filesystem1.74.0
          libgloo-dev  # Gloo's headers for ProcessGroupGloo.hpp (the pip wheel installs none)
)  # libcurl: the machine's own (the dev .deb alone links its static library)
mkdir -p "$DEST"
cd "$DEST"
# apt-get download drops privileges to _apt: let it write here
chmod a+rwx . 2>/dev/null || true
apt-get download "${PACKAGES[@]}"
ls -1 *.deb | wc -l | xargs echo "debs in $DEST:"
