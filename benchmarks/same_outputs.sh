#!/usr/bin/env bash
# Check that a change (a refactor) leaves what users get unchanged: run the same commands on
# real data with two source trees and compare every output file.
#
#   git worktree add --detach /tmp/before <old-commit>
#   benchmarks/same_outputs.sh /tmp/before /tmp/out-before
#   benchmarks/same_outputs.sh .            /tmp/out-after
#   .venv/bin/python benchmarks/same_outputs.py /tmp/out-before /tmp/out-after
#
# The commands: scdnn evaluate with the bundled weights on sichuan-aerial (the card's test
# images) and on jinsha-uav scene-b (every valid pixel, 1024 px windows), scdnn map of scene-b,
# and scdnn demo. Needs ../shared/data; about 5 minutes on 2 cores.
set -euo pipefail
TREE=$(cd "$1" && pwd); OUT=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$HERE/.venv/bin/python}
DATA=${DATA:-$HERE/../shared/data}
W=$TREE/src/scdnn/data/scdnn-sichuan.safetensors
export PYTHONPATH=$TREE/src
mkdir -p "$OUT"
cd "$TREE"
$PY -m scdnn.cli evaluate "$DATA/sichuan-aerial" --weights "$W" --out "$OUT/eval-sichuan" --overwrite > "$OUT/eval-sichuan.txt"
$PY -m scdnn.cli evaluate "$DATA/jinsha-uav/scene-b" --weights "$W" --out "$OUT/eval-jinsha-b" --overwrite --all --tile 1024 --overlap 256 > "$OUT/eval-jinsha.txt"
$PY -m scdnn.cli map "$DATA/jinsha-uav/scene-b/rgb.tif" --weights "$W" --out "$OUT/map-jinsha-b" --overwrite --tile 1024 --overlap 256 > "$OUT/map-jinsha.txt"
$PY -m scdnn.cli demo --out "$OUT/demo" > "$OUT/demo.txt"
