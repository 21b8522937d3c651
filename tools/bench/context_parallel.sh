#!/usr/bin/env bash
# Context parallelism on CPU: one mixer layer (D 256, 4 heads) on one 16K-token sequence at
# cp = 1, 2, 4 for gla (both state strategies) and softmax (ulysses, allgather_kv, ring_lse),
# forward + backward,
# slowest rank's median. This box has 2 cores: cp 2 runs one thread per rank, cp 4
# oversubscribes (the launcher gives each rank max(1, cores / N) threads), so the table shows
# overheads and volumes rather than speed-ups. Numbers go to docs/benchmarks.md.
#   tools/bench/context_parallel.sh [seq=16384] [reps=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${1:-16384}; R=${2:-3}
run() {  # nproc, then bench context arguments
  local n=$1; shift
  if [ "$n" = 1 ]; then build/attnlab bench context --seq "$T" --reps "$R" "$@"
  else build/attnlab launch --nproc-per-node "$n" -- bench context --seq "$T" --reps "$R" "$@"; fi
}
for n in 1 2 4; do run "$n" --mixer gla; done
for n in 2 4; do run "$n" --mixer gla --strategy state_scan; done
run 1 --mixer softmax
for n in 2 4; do run "$n" --mixer softmax --strategy ulysses; done
for n in 2 4; do run "$n" --mixer softmax --strategy allgather_kv; done
for n in 2 4; do run "$n" --mixer softmax --strategy ring_lse; done
