#!/usr/bin/env bash
# Trains recipes/ablation-linear.yaml once per mixer (same width, depth, data, steps and seed)
# and prints each run's final validation loss. Until attnlab has a sweep command, this is it.
#   bash tools/ablation-linear.sh [mixer ...]        (default: softmax gla lightning hedgehog)
set -euo pipefail
cd "$(dirname "$0")/.."
mixers=(softmax gla lightning hedgehog)
[ $# -gt 0 ] && mixers=("$@")
mkdir -p runs
for m in "${mixers[@]}"; do
  ./build/attnlab train recipes/ablation-linear.yaml --set model.mixer.type="$m" \
    --set run.name="ablation-linear-$m" 2>&1 | tee "runs/ablation-linear-$m.log"
done
echo
echo "| mixer | parameters | final val loss | val ppl |"
echo "|---|---|---|---|"
for m in "${mixers[@]}"; do
  f=runs/ablation-linear-$m/metrics.jsonl
  loss=$(grep '"val/loss"' "$f" | tail -1 | sed 's/.*"val\/loss": *\([0-9.eE+-]*\).*/\1/')
  params=$(grep -o '[0-9.]*M parameters' "runs/ablation-linear-$m.log" | head -1 | cut -d' ' -f1)
  printf "| %s | %s | %.4f | %.2f |\n" "$m" "$params" "$loss" "$(awk "BEGIN{print exp($loss)}")"
done
