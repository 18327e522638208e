#!/usr/bin/env bash
# Installs, with apt, every Debian package that Rudder's build, tests and demo need.
# Idempotent: packages already present are left alone and apt is not called at all.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds the PyTorch-Python baselines)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-openmp libgloo-dev
  libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev nlohmann-json3-dev
  libboost-dev prometheus-cpp-dev
  libpcre2-dev libutf8proc-dev libssl-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus curl procps
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-numpy wrk hyperfine)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
