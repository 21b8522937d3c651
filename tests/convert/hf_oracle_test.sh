#!/usr/bin/env bash
# The conversion oracle (docs/conversion.md, "Fidelity"): tiny random Llama (GQA, biases, untied
# head; Llama 3.1 rope scaling with a tied head; sharded safetensors) and GPT-2 models built and
# saved by Hugging Face transformers are imported, and attnlab's logits must match transformers'
# to 1e-5 relative RMS in fp32, with 20 greedy tokens identical; exported back, transformers
# loads them with the original's logits. The GPT-2 run then goes end to
# end: `generate --prompt TEXT` with the imported tokenizer continues exactly as transformers
# does, and `eval` and `train --resume` accept the imported run folder.
#   hf_oracle_test.sh ATTNLAB_BINARY     (transformers: $ATTNLAB_HF_PYTHON, set by tools/test.sh)
set -euo pipefail
attnlab="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${ATTNLAB_HF_PYTHON:-}"
if [ -z "$py" ] || ! "$py" -c 'import transformers' 2>/dev/null; then
  echo "SKIP: no transformers (ATTNLAB_HF_PYTHON='$py'); tools/test.sh installs it"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" "$here/make_tiny_hf.py" "$work/hf" >/dev/null 2>&1
for i in $(seq 1 30); do echo "the quick brown fox jumps over the lazy dog, a single step at a time"; echo "%"; done > "$work/corpus.txt"

for m in llama-gqa llama3-scaled llama-sharded gpt2 gpt2-json; do
  tok=byte; [ "${m#gpt2}" != "$m" ] && tok=auto
  "$attnlab" convert import --hf "$work/hf/$m" --out "$work/runs/$m" --tokenizer "$tok" \
    --prepare-from "$work/corpus.txt" --seq-len 32 --set train.batch_size=2 --set train.steps=2 \
    --set eval.batches=1
  "$py" "$root/tools/convert/hf_reference.py" --hf "$work/hf/$m" --out "$work/$m.ref.safetensors" >/dev/null 2>&1
  "$attnlab" convert verify "$work/runs/$m" --reference "$work/$m.ref.safetensors"
  # Export round trip: transformers loads the exported folder and gives the original's logits.
  "$attnlab" convert export "$work/runs/$m" --hf "$work/exported/$m"
  "$py" "$root/tools/convert/hf_reference.py" --hf "$work/exported/$m" --out "$work/$m.back.safetensors" >/dev/null 2>&1
  "$py" - "$work/$m.ref.safetensors" "$work/$m.back.safetensors" <<'PY'
import sys
from safetensors.torch import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a["input_ids"].equal(b["input_ids"])
rel = ((a["logits"] - b["logits"]).pow(2).mean().sqrt() / a["logits"].pow(2).mean().sqrt()).item()
same = a["greedy_tokens"].equal(b["greedy_tokens"])
print(f"export round trip {sys.argv[2]}: logits rel RMS {rel:.2e}, greedy identical: {same}")
sys.exit(0 if rel <= 1e-6 and same else 1)
PY
done

# A model attnlab trained itself (the default recipe's softmax blocks are Llama blocks) exports
# to a folder transformers runs with attnlab's logits.
"$attnlab" train "$root/recipes/default.yaml" --set run.dir="$work/runs" --set run.name=native \
  --set data.dir="$work/native-data" --set data.prepare_from="$work/corpus.txt" --set data.seq_len=32 \
  --set model.dim=64 --set model.layers=2 --set train.steps=3 --set train.batch_size=2 --set eval.batches=1 \
  --set model.mixer.kv_heads=2 >/dev/null
"$attnlab" convert export "$work/runs/native" --hf "$work/exported/native"
"$py" "$root/tools/convert/hf_reference.py" --hf "$work/exported/native" --out "$work/native.ref.safetensors" >/dev/null 2>&1
"$attnlab" convert verify "$work/runs/native" --reference "$work/native.ref.safetensors"

# An import never overwrites: a second one into the same folder is refused.
if "$attnlab" convert import --hf "$work/hf/gpt2" --out "$work/runs/gpt2" 2>"$work/err"; then
  echo "FAIL: import over an existing run folder succeeded"; exit 1
fi
grep -q "already exists" "$work/err"

# GPT-2 end to end with the imported tokenizer (vocab.json + merges.txt, and tokenizer.json alone).
prompt="the quick brown"
for m in gpt2 gpt2-json; do
# The continuation as raw bytes (a random model may emit a token holding half of a UTF-8
# character, which a text decode would replace): byte-level BPE tokens mapped back to bytes.
"$py" - "$work/hf/$m" "$prompt" > "$work/expected.txt" <<'PY' 2>/dev/null
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ids = tok(sys.argv[2], return_tensors="pt").input_ids
with torch.no_grad():
    for _ in range(12):
        ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
# GPT-2's byte <-> printable character table: 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to
# themselves, the other bytes to U+0100 upward in order.
kept = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
moved = [b for b in range(256) if b not in kept]
byte_of = {chr(b): b for b in kept} | {chr(256 + i): b for i, b in enumerate(moved)}
text = "".join(tok.convert_ids_to_tokens(ids[0].tolist()))
sys.stdout.buffer.write(bytes(byte_of[c] for c in text) + b"\n")
PY
"$attnlab" generate "$work/runs/$m" --prompt "$prompt" --tokens 12 --temperature 0 > "$work/got.txt"
if ! cmp -s "$work/got.txt" "$work/expected.txt"; then
  echo "FAIL: generate differs from transformers"
  echo "  attnlab:      $(od -c "$work/got.txt" | head -3)"
  echo "  transformers: $(od -c "$work/expected.txt" | head -3)"
  exit 1
fi
got="$(cat "$work/got.txt")"
echo "$m: generate --prompt matches transformers: $got"
done
"$attnlab" eval "$work/runs/gpt2"
"$attnlab" train "$work/runs/gpt2/config.yaml" --resume | tail -3
test -d "$work/runs/gpt2/checkpoints/step-2"
echo "PASS"
