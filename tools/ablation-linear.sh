#!/usr/bin/env bash
# Trains recipes/ablation-linear.yaml once per mixer (same width, depth, data, steps and seed)
# and prints each run's final validation loss. Until attnlab has a sweep command, this is it.
#   bash tools/ablation-linear.sh [mixer ...]        (default: softmax gla lightning hedgehog)
set -euo pipefail
cd "$(dirname "$0")/.."
mixers=("${@:-softmax gla lightning hedgehog}")
[ $# -eq 0 ] && mixers=(softmax gla lightning hedgehog)
for m in "${mixers[@]}"; do
  ./build/attnlab train recipes/ablation-linear.yaml --set model.mixer.type="$m" \
    --set run.name="ablation-linear-$m"
done
echo
echo "| mixer | parameters | final val loss | val ppl |"
echo "|---|---|---|---|"
for m in "${mixers[@]}"; do
  f=runs/ablation-linear-$m/metrics.jsonl
  loss=$(grep '"val/loss"' "$f" | tail -1 | sed 's/.*"val\/loss": *\([0-9.eE+-]*\).*/\1/')
  params=$(grep -o '"parameters": *[0-9]*' "runs/ablation-linear-$m/metrics.jsonl" | head -1 | grep -o '[0-9]*$' || echo "?")
  printf "| %s | %s | %.4f | %.2f |\n" "$m" "$params" "$loss" "$(awk "BEGIN{print exp($loss)}")"
done
