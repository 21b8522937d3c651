#!/usr/bin/env bash
# attnlab vs PyTorch-Python eager on the default recipe's shapes, same machine, runs
# interleaved (this box's timings drift by +-20% between runs) and the medians compared.
#   tools/bench/compare_eager.sh [repeats=3] [steps=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-3}; S=${2:-8}
cpp=(); py=()
for _ in $(seq "$R"); do
  cpp+=("$(build/attnlab bench train --recipe recipes/default.yaml --steps "$S" --warmup 2 | sed -n 's/.*| \([0-9.]*\) ms\/step.*/\1/p')")
  py+=("$(.venv/bin/python tools/bench/train_eager.py --steps "$S" --warmup 2 2>/dev/null | sed -n 's/.*| \([0-9.]*\) ms\/step.*/\1/p')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mc=$(median "${cpp[@]}"); mp=$(median "${py[@]}")
echo "attnlab ms/step: ${cpp[*]} (median $mc)"
echo "eager   ms/step: ${py[*]} (median $mp)"
awk -v c="$mc" -v p="$mp" 'BEGIN {printf "speed ratio attnlab/eager: %.2fx (higher is better for attnlab)\n", p / c}'
