#!/usr/bin/env python3
"""Reference logits and a greedy continuation of a Hugging Face model, computed by transformers,
for `attnlab convert verify` (docs/conversion.md, "Fidelity").

    python tools/convert/hf_reference.py --hf MODEL_DIR --out ref.safetensors

Writes input_ids [N, T] (random ids, seeded), logits [N, T, V] (fp32), greedy_prompt [P] and
greedy_tokens [G]: G argmax steps, each a full forward over the prompt plus what was generated
(no KV cache, no generation config: EOS does not stop it).
"""
import argparse

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hf", required=True, help="Hugging Face model folder")
    p.add_argument("--out", required=True, help="reference safetensors to write")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=24)
    p.add_argument("--prompt", type=int, default=5, help="greedy prompt length (random ids)")
    p.add_argument("--new-tokens", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_pretrained(a.hf, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (a.batch, a.seq), dtype=torch.int64)
    with torch.no_grad():
        logits = model(ids).logits.float()
        seq = torch.randint(0, vocab, (1, a.prompt), dtype=torch.int64)
        prompt = seq[0].clone()
        for _ in range(a.new_tokens):
            nxt = model(seq).logits[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    save_file({"input_ids": ids, "logits": logits.contiguous(), "greedy_prompt": prompt,
               "greedy_tokens": seq[0, a.prompt:].clone()}, a.out)
    print(f"{a.out}: logits {list(logits.shape)}, greedy {a.new_tokens} tokens after {a.prompt}")


if __name__ == "__main__":
    main()
