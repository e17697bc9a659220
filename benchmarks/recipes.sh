#!/usr/bin/env bash
# Networks under the paper's training recipe and the project's default one, at the `cpu`
# budget (1000 optimiser steps, batch 8, 256 px crops: the same on every host), 3 seeds:
#   benchmarks/recipes.sh sichuan default            # SCDnn, sichuan-aerial (seeded 70/30)
#   benchmarks/recipes.sh jinsha paper               # SCDnn, train scene-a, test scene-b
#   MODELS="all scdnn-disjoint" benchmarks/recipes.sh sichuan default   # the five + 4x4 kernels
#   benchmarks/recipes.sh sichuan default:loss=ce     # an ablation: one part of a recipe changed
# The benchmark folder (runs, checkpoints) is runs/recipe-<label>-<name>; its tables,
# figures and each run's log, card and scores are copied to
# benchmarks/results/recipes/<label>-<name>/, <label> the recipe with ':', ',' and '='
# written '-' and '+' written 'plus' (default:loss=ce -> default-loss-ce). Resumable: rerun after a kill (finished runs
# are skipped, an interrupted one resumes from its last checkpoint); networks and seeds can
# be added a session at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: benchmarks/recipes.sh sichuan|jinsha paper|default[:part=value,...]}
recipe=${2:?usage: benchmarks/recipes.sh sichuan|jinsha paper|default[:part=value,...]}
case "$name" in
  jinsha)   DATA=../shared/data/jinsha-uav;     EXTRA=(--test-scenes scene-b) ;;
  sichuan)  DATA=../shared/data/sichuan-aerial; EXTRA=() ;;
  *) echo "benchmarks/recipes.sh: unknown dataset '$name' (sichuan or jinsha)" >&2; exit 2 ;;
esac
label=${recipe//+/plus}
label=${label//[:,=]/-}
RUN=${RUN:-runs/recipe-$label-$name}
RESULTS=benchmarks/results/recipes/$label-$name
# shellcheck disable=SC2086
.venv/bin/scdnn benchmark "$DATA" "${EXTRA[@]}" --out "$RUN" --budget cpu --recipe "$recipe" \
  --models ${MODELS:-scdnn} --seeds ${SEEDS:-0 1 2}
mkdir -p "$RESULTS"
cp "$RUN"/results.md "$RUN"/results.json "$RUN"/split.json "$RUN"/*.png "$RESULTS/"
for run in "$RUN"/runs/*/; do
  run_name=$(basename "$run")
  mkdir -p "$RESULTS/runs/$run_name"
  cp "$run"/log.csv "$run"/model.json "$run"/eval/metrics.json "$run"/eval/per_image.csv \
     "$run"/eval/per_tile.csv "$RESULTS/runs/$run_name/" 2>/dev/null || true
done
