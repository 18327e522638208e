#!/usr/bin/env bash
# Runs every benchmark built under BUILD_DIR/bench and prints its figures.
# Usage: bench/run.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?usage: bench/run.sh BUILD_DIR}
shopt -s nullglob
benches=("$build_dir"/bench/bench_*)
if [[ ${#benches[@]} -eq 0 ]]; then
  echo "bench: no benchmarks are built yet (the models and trainer issues add them)"
  exit 0
fi
for b in "${benches[@]}"; do
  echo "== $(basename "$b")"
  "$b"
done
