#!/usr/bin/env bash
# First real accuracy (networks issue §6): SCDnn on ../shared/data/sichuan-aerial, seeded 70/30
# split (seed 0: 21 train, 4 validation, 11 test images), scored on the 30 % test images.
# Budget: 40 epochs x 8 random 256x256 crops per training image (6,720 crops), batch 8,
# fp32 on CPU; about 20 minutes on 2 cores. Resumable: rerun with RESUME=1 after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/sichuan-aerial
RUN=${RUN:-runs/sichuan-scdnn}
RESULTS=benchmarks/results/sichuan-scdnn
if [ "${RESUME:-0}" = 1 ]; then
  .venv/bin/scdnn train "$DATA" --out "$RUN" --resume
else
  .venv/bin/scdnn train "$DATA" --out "$RUN" --model scdnn --epochs 40 --crops-per-image 8 \
    --batch-size 8 --image-size 256 --seed 0
fi
.venv/bin/scdnn evaluate "$DATA" --weights "$RUN/weights.safetensors" --out "$RUN/eval" --overwrite
mkdir -p "$RESULTS"
cp "$RUN/eval/metrics.json" "$RUN/eval/per_image.csv" "$RUN/log.csv" "$RUN/model.json" \
   "$RUN/split.json" "$RESULTS/"
