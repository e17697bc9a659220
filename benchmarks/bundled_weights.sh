#!/usr/bin/env bash
# The bundled weights (src/scdnn/data/scdnn-sichuan.safetensors): SCDnn trained on
# ../shared/data/sichuan-aerial under the default recipe at SCALE of the resolution (0.25)
# (--input-scale; at 0.25 the network sees 256 px of 1024 px crops of the data), seeded 70/30 split
# (seed 0: 21 training, 4 validation, 11 held-back test images; the demo sample is 4 of the
# test images), STEPS optimiser steps (3000) of batch 8. Scored on the test images raw (as the
# benchmark tables) and with the default outline cleaning (as `scdnn evaluate`).
# Idempotent and resumable: a finished run is only re-scored, a killed one is resumed.
#   benchmarks/bundled_weights.sh        -> runs/bundled-sichuan, benchmarks/results/bundled-sichuan/
#   .venv/bin/python benchmarks/bundle.py --weights runs/bundled-sichuan/weights.safetensors \
#       --data ../shared/data/sichuan-aerial --metrics benchmarks/results/bundled-sichuan/metrics.json \
#       --elsewhere ../shared/data/hokkaido-iburi ../shared/data/jinsha-uav
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/sichuan-aerial
STEPS=${STEPS:-3000}
SCALE=${SCALE:-0.25}
RUN=${RUN:-runs/bundled-sichuan}
RESULTS=benchmarks/results/bundled-sichuan
if [ -f "$RUN/weights.safetensors" ]; then
  echo "$RUN is finished; scoring it"
elif [ -f "$RUN/checkpoints/last.ckpt" ]; then
  .venv/bin/scdnn train "$DATA" --out "$RUN" --resume
else
  .venv/bin/scdnn train "$DATA" --out "$RUN" --model scdnn --recipe default --steps "$STEPS" \
    --crops-per-image 8 --batch-size 8 --image-size 256 --input-scale "$SCALE" --seed 0
fi
.venv/bin/scdnn evaluate "$DATA" --weights "$RUN/weights.safetensors" --out "$RUN/eval-raw" \
  --raw --overwrite
.venv/bin/scdnn evaluate "$DATA" --weights "$RUN/weights.safetensors" --out "$RUN/eval" --overwrite
mkdir -p "$RESULTS"
cp "$RUN/eval/metrics.json" "$RUN/eval/per_image.csv" "$RUN/log.csv" "$RUN/model.json" \
   "$RUN/split.json" "$RESULTS/"
cp "$RUN/eval-raw/metrics.json" "$RESULTS/metrics-raw.json"
