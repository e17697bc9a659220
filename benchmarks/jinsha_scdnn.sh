#!/usr/bin/env bash
# Scene mapping on real data: SCDnn trained on jinsha-uav scene-a, mapped on
# scene-b and scored against scene-b's label over every valid pixel; RGB only and RGB + DSM
# (terrain channels: slope, relative elevation), the same budget for both:
#   EPOCHS (default 40) x WINDOWS (default 128) random 256x256 windows per epoch, batch 8,
#   the paper's recipe (Adam lr 1e-3, best epoch by validation MIoU), seed 0; 20 % of
#   scene-a's valid area held out as 256 px blocks for validation. The map is cleaned with
#   the default outline cleaning (objects and holes below 100 m², 1 m smoothing); the results
#   committed in benchmarks/results/jinsha-scdnn were made before cleaning existed, when
#   --min-area 25 only dropped polygons below 25 m².
# Idempotent and resumable: a finished run is only re-scored, a killed one is resumed.
#   benchmarks/jinsha_scdnn.sh            -> benchmarks/results/jinsha-scdnn/{rgb,rgb-dsm}/
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/jinsha-uav
EPOCHS=${EPOCHS:-40}
WINDOWS=${WINDOWS:-128}
VARIANTS=${VARIANTS:-"rgb rgb-dsm"}
RESULTS=benchmarks/results/jinsha-scdnn
for variant in $VARIANTS; do
  RUN=runs/jinsha-scdnn-$variant
  EXTRA=(); DSM=()
  if [ "$variant" = rgb-dsm ]; then EXTRA=(--use-dsm); DSM=(--dsm "$DATA/scene-b/dsm.tif"); fi
  if [ -f "$RUN/weights.safetensors" ]; then
    echo "$RUN is finished; scoring it"
  elif [ -f "$RUN/checkpoints/last.ckpt" ]; then
    .venv/bin/scdnn train "$DATA" --out "$RUN" --resume
  else
    .venv/bin/scdnn train "$DATA" --out "$RUN" --model scdnn --test-scenes scene-b \
      --epochs "$EPOCHS" --windows-per-epoch "$WINDOWS" --batch-size 8 --image-size 256 \
      --val-fraction 0.2 --val-block 256 --seed 0 --recipe paper "${EXTRA[@]}"
  fi
  .venv/bin/scdnn evaluate "$DATA" --weights "$RUN/weights.safetensors" --out "$RUN/eval" \
    --overwrite
  .venv/bin/scdnn map "$DATA/scene-b/rgb.tif" "${DSM[@]}" --weights "$RUN/weights.safetensors" \
    --out "$RUN/map" --overwrite
  mkdir -p "$RESULTS/$variant"
  cp "$RUN/eval/metrics.json" "$RUN/eval/per_image.csv" "$RUN/log.csv" "$RUN/model.json" \
     "$RUN/split.json" "$RUN/map/map.json" "$RESULTS/$variant/"
done
.venv/bin/python benchmarks/jinsha_overview.py --data "$DATA/scene-b" --out "$RESULTS" \
  $(for v in $VARIANTS; do echo "--run $v=runs/jinsha-scdnn-$v"; done)
