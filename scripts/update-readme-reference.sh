#!/usr/bin/env bash
# Replaces the configuration reference in README.md (between its markers) with the output of
# `rudder config reference`. Usage: scripts/update-readme-reference.sh PATH/TO/rudder
set -euo pipefail
rudder=${1:?usage: update-readme-reference.sh PATH/TO/rudder}
cd "$(dirname "$0")/.."
reference=$(mktemp)
"$rudder" config reference > "$reference"
awk -v ref="$reference" '
  /<!-- config-reference:begin -->/ { print; while ((getline line < ref) > 0) print line; skip = 1; next }
  /<!-- config-reference:end -->/ { skip = 0 }
  !skip { print }
' README.md > README.md.tmp
mv README.md.tmp README.md
rm -f "$reference"
echo "README.md: configuration reference updated"
