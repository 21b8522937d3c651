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
  [titans-mag]="{type: titans, architecture: mag}"
  [titans-mal]="{type: titans, architecture: mal}"
  [titans-mac]="{type: titans, architecture: mac, persistent: 4}"
)
# Mixers that come with their own block (configs/mixers/grassmann.yaml).
declare -A block=(
  [grassmann]="model.positions=learned model.block.layout=post_norm model.block.norm=layernorm model.block.mlp=gelu model.block.bias=true model.block.mixer_residual=false"
)
mixers=(softmax swa sigmoid dma moh ssa gla lightning hedgehog titans titans-mag titans-mal titans-mac grassmann)
[ $# -gt 0 ] && mixers=("$@")
mkdir -p runs
for m in "${mixers[@]}"; do
  spec="${opts[$m]:-{type: $m\}}"
  sets=()
  for kv in ${block[$m]:-}; do sets+=(--set "$kv"); done
  ./build/attnlab train recipes/ablation-linear.yaml --set "model.mixer=$spec" "${sets[@]}" \
    --set run.name="ablation-$m" 2>&1 | tee "runs/ablation-$m.log"
done
echo
echo "| mixer | options | parameters | final val loss | val ppl |"
echo "|---|---|---|---|---|"
for m in "${mixers[@]}"; do
  f=runs/ablation-$m/metrics.jsonl
  loss=$(grep '"val/loss"' "$f" | tail -1 | sed 's/.*"val\/loss": *\([0-9.eE+-]*\).*/\1/')
  params=$(grep -o '[0-9.]*M parameters' "runs/ablation-$m.log" | head -1 | cut -d' ' -f1)
  printf "| %s | %s | %s | %.4f | %.2f |\n" "$m" "${opts[$m]:-defaults}${block[$m]:+ (its block)}" "$params" "$loss" \
    "$(awk "BEGIN{print exp($loss)}")"
done
