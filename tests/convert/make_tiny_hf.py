#!/usr/bin/env python3
"""Tiny random Hugging Face models for the conversion oracle test (tests/convert/hf_oracle_test.sh).

    python make_tiny_hf.py OUT_DIR

Writes OUT_DIR/{llama-gqa, llama3-scaled, llama-sharded, gpt2, gpt2-json}: save_pretrained folders. llama-gqa
has GQA and an untied head, llama3-scaled a tied head and Llama 3.1 rope scaling with a short
original context (so the scaled bands matter at these lengths), llama-sharded the same as
llama-gqa split into several safetensors shards, gpt2 a byte-level BPE tokenizer trained here
(vocab.json + merges.txt), gpt2-json the same with tokenizer.json alone.
"""
import os
import shutil
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, LlamaConfig, LlamaForCausalLM

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a journey of a thousand miles begins with a single step",
    "all that glitters is not gold, and not all who wander are lost",
    "to be or not to be, that is the question",
] * 20


def randomize(model, seed):
    # transformers initialises norms to 1 and biases to 0; random values everywhere make a wrong
    # mapping (a swapped norm, a dropped bias) visible in the logits.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 1 else 0.2) + (1.0 if p.dim() == 1 else 0.0))


def llama(out, seed, shard=None, **kw):
    cfg = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                      num_attention_heads=6, max_position_embeddings=256, rms_norm_eps=1e-5, **kw)
    m = LlamaForCausalLM(cfg)
    randomize(m, seed)
    m.save_pretrained(out, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))


def gpt2(out, seed):
    from tokenizers import ByteLevelBPETokenizer
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXT, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    os.makedirs(out, exist_ok=True)
    bpe.save_model(out)  # vocab.json + merges.txt
    tok = GPT2TokenizerFast(vocab=f"{out}/vocab.json", merges=f"{out}/merges.txt",
                            eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(out)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = GPT2Config(vocab_size=len(tok), n_embd=48, n_layer=3, n_head=4, n_positions=128,
                     activation_function="gelu_new", bos_token_id=eot, eos_token_id=eot)
    m = GPT2LMHeadModel(cfg)
    randomize(m, seed)
    m.save_pretrained(out, safe_serialization=True)


def main():
    root = sys.argv[1]
    llama(f"{root}/llama-gqa", 1, num_key_value_heads=2, tie_word_embeddings=False, attention_bias=True)
    llama(f"{root}/llama3-scaled", 2, num_key_value_heads=3, tie_word_embeddings=True,
          rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    llama(f"{root}/llama-sharded", 3, num_key_value_heads=2, tie_word_embeddings=False, shard="40KB")
    gpt2(f"{root}/gpt2", 4)
    # The same model with only tokenizer.json (what transformers v5's save_pretrained writes).
    shutil.copytree(f"{root}/gpt2", f"{root}/gpt2-json")
    for f in ("vocab.json", "merges.txt"):
        os.remove(f"{root}/gpt2-json/{f}")
    print(f"tiny Hugging Face models in {root}")


if __name__ == "__main__":
    main()
