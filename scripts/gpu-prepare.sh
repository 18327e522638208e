#!/usr/bin/env bash
# Prepares what a GPU machine without network needs to build and test Rudder beside its PyTorch
# (scripts/gpu-check.sh): Debian's packages of every build dependency that PyTorch's install
# does not bring (runtime libraries and -dev files of the exact versions installed here, so
# protoc and libprotobuf come from the same 3.21 release), and a copy of the golden data.
# Runs on the CPU machine (Debian 12, apt reachable). Idempotent: packages already downloaded
# are kept. The folder is ignored by git; hand it to the GPU machine as a carried path.
# Usage: scripts/gpu-prepare.sh [DEST]   (DEST: .gpu-deps under the repository root)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.gpu-deps}
golden_src=${RUDDER_GOLDEN_DIR:-$root/../shared/golden}

# Each find_package/pkg_check_modules of the build, with what its CMake files ask for in turn
# (prometheus-cpp's config finds civetweb, ZLIB and CURL), and pkg-config itself.
packages=(
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 protobuf-compiler libprotoc32
  zlib1g-dev
  libyaml-cpp-dev libyaml-cpp0.7
  nlohmann-json3-dev
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libprometheus-cpp-push1.0 civetweb libcivetweb-dev libcivetweb1 libcurl4-openssl-dev libcurl4
  libboost-dev libboost1.74-dev
  libssl-dev libssl3
  libpcre2-dev libpcre2-8-0
  libutf8proc-dev libutf8proc2
  libgtest-dev libgmock-dev
  pkg-config pkgconf pkgconf-bin libpkgconf3
)

mkdir -p "$dest/debs"
cd "$dest/debs"
wanted=()
for p in "${packages[@]}"; do
  # The installed version when there is one: what CI builds and tests against.
  v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  if [[ -n "$v" ]]; then
    # apt-get download names files with the epoch's colon escaped as %3a.
    f=$(ls "${p}_${v/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
    [[ -n "$f" ]] && continue
    wanted+=("$p=$v")
  else
    ls "${p}_"*.deb >/dev/null 2>&1 && continue
    wanted+=("$p")
  fi
done
if [[ ${#wanted[@]} -gt 0 ]]; then
  echo "gpu-prepare: downloading ${#wanted[@]} packages"
  for w in "${wanted[@]}"; do
    # An installed version that the archive no longer holds (superseded by a security update):
    # the archive's candidate, of the same ABI and headers.
    apt-get download -q "$w" 2>/dev/null || apt-get download -q "${w%%=*}"
  done
fi

# The golden models and expected outputs (RUDDER_GOLDEN_DIR there).
if [[ -d "$golden_src" ]]; then
  rm -rf "$dest/golden"
  cp -r "$golden_src" "$dest/golden"
else
  echo "gpu-prepare: no golden data at $golden_src; golden tests will skip on the GPU" >&2
fi

python_torch_abi_note="gpu-check.sh stops when torch reports _GLIBCXX_USE_CXX11_ABI=0"
{
  echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "$python_torch_abi_note"
  (cd "$dest/debs" && ls -1 *.deb)
} >"$dest/MANIFEST"
echo "gpu-prepare: $(ls "$dest/debs" | wc -l) packages, $(du -sh "$dest" | cut -f1) in $dest"
size_kib=$(du -sk "$dest" | cut -f1)
if ((size_kib > 60 * 1024)); then
  echo "gpu-prepare: warning: $dest is over 60 MiB; the device tool carries 64 MiB in all" >&2
fi
