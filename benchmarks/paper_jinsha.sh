#!/usr/bin/env bash
# The paper's experiment (issue 5) on jinsha-uav: train on scene-a, test on every valid pixel
# of scene-b, at the `cpu` budget (about 20 minutes of training per network on 2 cores).
# The benchmark folder (with its runs and checkpoints) is runs/paper-jinsha; the tables and
# figures are copied to benchmarks/results/paper-jinsha/. Resumable: rerun after a kill.
# MODELS picks networks (default: all five); rerunning with more models in the same folder
# adds them, finished ones are skipped, so the comparison can be built up a session at a time.
#   benchmarks/paper_jinsha.sh
#   MODELS="scdnn deeplabv3plus-resnet50" benchmarks/paper_jinsha.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/jinsha-uav
RUN=${RUN:-runs/paper-jinsha}
RESULTS=benchmarks/results/paper-jinsha
# shellcheck disable=SC2086
.venv/bin/scdnn benchmark "$DATA" --test-scenes scene-b --out "$RUN" --budget cpu \
  --models ${MODELS:-all} ${SEEDS:+--seeds $SEEDS}
mkdir -p "$RESULTS"
cp "$RUN"/results.md "$RUN"/results.json "$RUN"/split.json "$RUN"/*.png "$RESULTS/"
for run in "$RUN"/runs/*/; do
  name=$(basename "$run")
  mkdir -p "$RESULTS/runs/$name"
  cp "$run"/log.csv "$run"/model.json "$run"/eval/metrics.json "$run"/eval/per_image.csv \
     "$RESULTS/runs/$name/" 2>/dev/null || true
done
