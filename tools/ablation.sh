#!/usr/bin/env bash
# Trains recipes/ablation-linear.yaml once per mixer (same width, depth, data, steps and seed;
# parameter counts printed, they differ only by each mixer's own small extras) and prints each
# run's final validation loss. Mixers whose defaults would not act at the recipe's 256-token
# sequences get the options of their preset (configs/mixers/<name>.yaml).
#   bash tools/ablation.sh [mixer ...]   (default: every registered mixer of both families)
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A opts=(
  [swa]="{type: swa, window: 64, sinks: 4}"
  [dma]="{type: dma, keep_window: 64}"
  [ssa]="{type: ssa, block_size: 16, block_count: 4}"
)
mixers=(softmax swa sigmoid dma moh ssa gla lightning hedgehog)
[ $# -gt 0 ] && mixers=("$@")
mkdir -p runs
for m in "${mixers[@]}"; do
  spec="${opts[$m]:-{type: $m\}}"
  ./build/attnlab train recipes/ablation-linear.yaml --set "model.mixer=$spec" \
    --set run.name="ablation-$m" 2>&1 | tee "runs/ablation-$m.log"
done
echo
echo "| mixer | options | parameters | final val loss | val ppl |"
echo "|---|---|---|---|---|"
for m in "${mixers[@]}"; do
  f=runs/ablation-$m/metrics.jsonl
  loss=$(grep '"val/loss"' "$f" | tail -1 | sed 's/.*"val\/loss": *\([0-9.eE+-]*\).*/\1/')
  params=$(grep -o '[0-9.]*M parameters' "runs/ablation-$m.log" | head -1 | cut -d' ' -f1)
  printf "| %s | %s | %s | %.4f | %.2f |\n" "$m" "${opts[$m]:-defaults}" "$params" "$loss" "$(awk "BEGIN{print exp($loss)}")"
done
