#!/usr/bin/env bash
# The paper's experiment (issue 5) on one of the real datasets under ../shared/data, at the
# `cpu` budget (about 20 minutes of training per network on 2 cores):
#   jinsha    jinsha-uav: train on scene-a, test on every valid pixel of scene-b
#   sichuan   sichuan-aerial: seeded 70/30 image split (split seed 0)
#   hokkaido  hokkaido-iburi: seeded 70/30 image split (split seed 0)
# The benchmark folder (runs, checkpoints) is runs/paper-<name>; its tables, figures and each
# run's log, card and scores are copied to benchmarks/results/paper-<name>/.
# Resumable: rerun after a kill. Networks and seeds can be added a session at a time:
# finished runs are skipped, and results.md covers every finished run of the requested
# networks in the folder, whatever its seed.
#   benchmarks/paper.sh jinsha
#   MODELS="scdnn sssn" SEEDS=1 benchmarks/paper.sh jinsha   # then, for the full tables:
#   benchmarks/paper.sh jinsha             # (results.md covers the requested networks only)
#   ABLATIONS=1 benchmarks/paper.sh jinsha # the five plus scdnn-aspp, -noskip, -disjoint
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: benchmarks/paper.sh jinsha|sichuan|hokkaido}
case "$name" in
  jinsha)   DATA=../shared/data/jinsha-uav;     EXTRA=(--test-scenes scene-b) ;;
  sichuan)  DATA=../shared/data/sichuan-aerial; EXTRA=() ;;
  hokkaido) DATA=../shared/data/hokkaido-iburi; EXTRA=() ;;
  *) echo "benchmarks/paper.sh: unknown dataset '$name' (jinsha, sichuan or hokkaido)" >&2
     exit 2 ;;
esac
RUN=${RUN:-runs/paper-$name}
RESULTS=benchmarks/results/paper-$name
# shellcheck disable=SC2086
.venv/bin/scdnn benchmark "$DATA" "${EXTRA[@]}" --out "$RUN" --budget cpu \
  --models ${MODELS:-all} ${SEEDS:+--seeds $SEEDS} ${ABLATIONS:+--ablations}
mkdir -p "$RESULTS"
cp "$RUN"/results.md "$RUN"/results.json "$RUN"/split.json "$RUN"/*.png "$RESULTS/"
for run in "$RUN"/runs/*/; do
  run_name=$(basename "$run")
  mkdir -p "$RESULTS/runs/$run_name"
  cp "$run"/log.csv "$run"/model.json "$run"/eval/metrics.json "$run"/eval/per_image.csv "$run"/eval/per_tile.csv \
     "$RESULTS/runs/$run_name/" 2>/dev/null || true
done
