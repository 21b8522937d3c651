#!/usr/bin/env bash
# The linear-family ablation (softmax vs GLA vs Lightning vs Hedgehog): tools/ablation.sh with
# those four mixers.
if [ $# -eq 0 ]; then set -- softmax gla lightning hedgehog; fi
exec "$(dirname "$0")/ablation.sh" "$@"
