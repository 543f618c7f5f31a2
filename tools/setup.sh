#!/usr/bin/env bash
# Installs everything graft needs on a Debian bookworm machine, idempotently: only the
# packages that are missing are installed. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache git pkg-config
  # graft's dependencies
  libtorch-dev libyaml-cpp-dev libboost-dev libboost-filesystem-dev libboost-test-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libcurl4-openssl-dev
  libpng-dev libjpeg-dev zlib1g-dev libisal-dev libgloo-dev
  # fast BLAS (Debian's default is the slow reference BLAS)
  libopenblas0-pthread
  # data and the Python oracle used by the tests
  dataset-fashion-mnist python3-torch python3-torchvision
  # the run report's charts (inlined into report.html) and the browser its tests render it in
  libjs-chart.js chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
