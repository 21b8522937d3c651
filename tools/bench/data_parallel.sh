#!/usr/bin/env bash
# Data parallel on CPU: the default recipe at one global batch (16 x 256 tokens per step), as
# 1 process x 2 threads against 2 processes x 1 thread (DDP with one 25 MB bucket, DDP with
# 1 MB buckets that leave during backward, ZeRO-1), interleaved R times (this box drifts), then
# the collectives' time against their size. Numbers go to docs/benchmarks.md.
#   tools/bench/data_parallel.sh [repeats=2] [steps=30]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-2}; S=${2:-30}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--set train.steps="$S" --set eval.every=0 --set eval.batches=1 --set checkpoint.every=0
        --set log.every=10 --set log.tensorboard=false --set run.dir="$out/runs")
# The mean tok/s and all-reduce share of the progress lines after the first (warm-up) one.
summary() {
  grep '^step' "$1" | tail -n +2 | sed -n 's/.*| \([0-9]*\) tok\/s.*/\1/p' |
    awk '{s+=$1; n++} END {printf "%.0f tok/s", s/n}'
  grep '^step' "$1" | tail -n +2 | sed -n 's/.*all-reduce \([0-9]*\)%.*/\1/p' |
    awk '{s+=$1; n++} END {if (n) printf ", all-reduce wait %.0f%% of the step", s/n}'
  grep -o 'loss [0-9.]*' "$1" | tail -1 | sed 's/^/, final /'
  echo
}
for r in $(seq "$R"); do
  build/attnlab train recipes/default.yaml "${common[@]}" --set run.name="one-$r" --set train.batch_size=16 \
    --set train.threads=2 > "$out/one-$r.log"
  echo "repeat $r | 1 process x 2 threads, batch 16      | $(summary "$out/one-$r.log")"
  for v in "ddp25:parallel.bucket_mb=25" "ddp1:parallel.bucket_mb=1" "zero1:parallel.zero=1"; do
    name=${v%%:*}
    build/attnlab launch --nproc-per-node 2 -- train recipes/default.yaml "${common[@]}" --set run.name="$name-$r" \
      --set train.batch_size=8 --set train.threads=1 --set "${v#*:}" > "$out/$name-$r.log"
    printf 'repeat %s | 2 processes x 1 thread, %-9s | %s\n' "$r" "$name" "$(summary "$out/$name-$r.log")"
  done
done
grep -h '^optimizer' "$out"/one-1.log "$out"/ddp25-1.log "$out"/zero1-1.log
build/attnlab launch --nproc-per-node 2 -- bench collectives --max-mb 64 --reps 10
