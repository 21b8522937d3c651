#!/usr/bin/env bash
# CLI behaviour through the real binary: exit codes (0 ok, 1 runtime, 2 usage/config), nothing
# written on a bad config, train -> SIGINT checkpoint -> --resume -> eval -> generate.
set -uo pipefail
BIN="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
fail=0; pass=0
check() {  # check NAME EXPECTED_RC ACTUAL_RC
  if [ "$2" = "$3" ]; then pass=$((pass+1)); else echo "FAIL: $1: exit $3, expected $2"; fail=$((fail+1)); fi
}
expect_text() {  # expect_text NAME FILE PATTERN
  if grep -q -- "$3" "$2"; then pass=$((pass+1)); else echo "FAIL: $1: '$3' not in:"; cat "$2"; fail=$((fail+1)); fi
}

"$BIN" --help >"$W/out" 2>&1; check "--help" 0 $?
"$BIN" train --help >"$W/out" 2>&1; check "train --help" 0 $?
"$BIN" frobnicate >"$W/out" 2>&1; check "unknown subcommand" 2 $?
"$BIN" list mixers >"$W/out" 2>&1; check "list mixers" 0 $?
expect_text "list shows softmax" "$W/out" "softmax: causal"

cat >"$W/bad.yaml" <<YAML
extends: $ROOT/recipes/default.yaml
run: {dir: $W/runs}
train: {stepz: 3}
YAML
"$BIN" train "$W/bad.yaml" >"$W/out" 2>&1; check "bad config" 2 $?
expect_text "bad config message" "$W/out" "bad.yaml:3:16: train.stepz: unknown key (did you mean 'steps'?)"
[ ! -e "$W/runs" ]; check "nothing written on a bad config" 0 $?

# A tiny real run on a small corpus.
python3 - "$W/corpus.txt" <<'PY'
import random, sys
random.seed(1)
words = "the cat sat on a mat and dog ran to see what was there".split()
with open(sys.argv[1], "w") as f:
    for d in range(300):
        f.write(" ".join(random.choice(words) for _ in range(30)) + "\n%\n")
PY
SETS=(--set run.dir="$W/runs" --set data.dir="$W/data" --set data.prepare_from="$W/corpus.txt"
      --set model.dim=32 --set model.layers=2 --set data.seq_len=32 --set train.batch_size=4
      --set train.threads=1 --set eval.batches=2 --set eval.every=0 --set checkpoint.every=0 --set log.every=1)
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set train.steps=100000 >"$W/train.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "^step" "$W/train.log" 2>/dev/null && break; sleep 0.2; done
kill -INT $pid; wait $pid; check "SIGINT exits cleanly" 0 $?
expect_text "SIGINT saves" "$W/train.log" "interrupted: saved a checkpoint"
expect_text "progress line" "$W/train.log" "tok/s | MFU"
[ -f "$W/runs/default/checkpoints/latest" ]; check "latest written" 0 $?
[ -s "$W/runs/default/metrics.jsonl" ]; check "metrics.jsonl written" 0 $?
ls "$W/runs/default/"events.out.tfevents.* >/dev/null 2>&1; check "tensorboard file" 0 $?

"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set train.steps=3 >"$W/out" 2>&1
check "refuse to overwrite a run" 2 $?
step=$(sed -n 's/.*"step": \([0-9]*\).*/\1/p' "$W/runs/default/checkpoints/$(cat "$W/runs/default/checkpoints/latest")/state.json")
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set train.steps=$((step + 2)) --resume >"$W/out" 2>&1
check "resume" 0 $?
expect_text "resume message" "$W/out" "resume: .* at step $step"
expect_text "resume continues" "$W/out" "step $((step + 2))/$((step + 2))"

"$BIN" eval "$W/runs/default" >"$W/out" 2>&1; check "eval" 0 $?
expect_text "eval prints ppl" "$W/out" "val ppl"
"$BIN" generate "$W/runs/default" --prompt "the cat" --tokens 20 --seed 1 >"$W/out" 2>&1; check "generate" 0 $?
expect_text "generate continues the prompt" "$W/out" "^the cat"
"$BIN" config show "$W/runs/default" >"$W/out" 2>&1; check "config show run" 0 $?
expect_text "config show" "$W/out" "seq_len: 32"

newest="$W/runs/default/checkpoints/$(cat "$W/runs/default/checkpoints/latest")"
printf 'garbage' >"$newest/model.safetensors"
"$BIN" eval "$W/runs/default" >"$W/out" 2>&1; check "eval falls back to the older verified checkpoint" 0 $?
expect_text "fallback is announced" "$W/out" "warning: skipping $newest/model.safetensors: 7 bytes, state.json records"
"$BIN" eval "$W/runs/default" --checkpoint "$newest" >"$W/out" 2>&1; check "corrupt checkpoint is a runtime error" 1 $?
expect_text "corrupt checkpoint message" "$W/out" "$newest/model.safetensors: 7 bytes"
for d in "$W/runs/default/checkpoints"/step-*; do printf 'x' >>"$d/optimizer.safetensors"; done
"$BIN" eval "$W/runs/default" >"$W/out" 2>&1; check "no verified checkpoint is a runtime error" 1 $?
expect_text "no verified checkpoint message" "$W/out" "no checkpoint verifies"

# Hostile command-line values are usage errors (exit 2) naming the argument.
"$BIN" generate "$W/runs/default" --tokens 9223372036854775807 >"$W/out" 2>&1; check "generate --tokens INT64_MAX" 2 $?
expect_text "--tokens message" "$W/out" "exceed model.max_seq_len"
"$BIN" generate "$W/runs/default" --temperature nan >"$W/out" 2>&1; check "generate --temperature nan" 2 $?
expect_text "--temperature message" "$W/out" "must be a finite number"
"$BIN" generate "$W/runs/default" --top-k -1 >"$W/out" 2>&1; check "generate --top-k -1" 2 $?
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set run.name=threads --set train.threads=4096 >"$W/out" 2>&1
check "train.threads above the cores" 2 $?
expect_text "threads message" "$W/out" "exceeds the .* cores of this machine"
: >"$W/empty.yaml"
"$BIN" train "$W/empty.yaml" >"$W/out" 2>&1; check "empty recipe" 2 $?
expect_text "empty recipe message" "$W/out" "the recipe names no mixer"
"$BIN" config show /dev/null >"$W/out" 2>&1; check "/dev/null recipe" 2 $?
"$BIN" config show "$W" >"$W/out" 2>&1; check "a folder without config.yaml" 2 $?
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set run.name=.. --set train.steps=1 >"$W/out" 2>&1
check "run.name=.." 2 $?
[ ! -e "$W/config.yaml" ]; check "run.name=.. wrote nothing into the parent" 0 $?

# A closed stdout (| head) stops training with a checkpoint instead of killing it by SIGPIPE.
set +o pipefail
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set run.name=piped --set train.steps=100000 | head -n 3 >/dev/null
rc=${PIPESTATUS[0]}
set -o pipefail
check "train | head exits cleanly" 0 "$rc"
[ -f "$W/runs/piped/checkpoints/latest" ]; check "train | head saved a checkpoint" 0 $?

"$BIN" data prepare --input "$W/corpus.txt" --out "$W/shards" >"$W/out" 2>&1; check "data prepare" 0 $?
ls "$W/shards"/train_000000.bin "$W/shards"/val_000000.bin >/dev/null; check "shards written" 0 $?
"$BIN" data prepare --input "$W/missing" --out "$W/shards2" >"$W/out" 2>&1; check "data prepare missing input" 1 $?
"$BIN" data prepare --input "$W/corpus.txt" --out "$W/runs" >"$W/out" 2>&1; check "data prepare into a foreign folder" 2 $?
expect_text "foreign folder message" "$W/out" "--out '$W/runs' exists but was not written by attnlab"
"$BIN" train "$ROOT/recipes/default.yaml" "${SETS[@]}" --set run.name=wipe --set data.dir="$W/runs" >"$W/out" 2>&1
check "data.dir naming a foreign folder" 2 $?
[ -d "$W/runs/default/checkpoints" ]; check "the foreign folder is untouched" 0 $?

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
