// The tokenizer of a Hugging Face folder, as one attnlab reads (docs/conversion.md,
// "Tokenizers"): GPT-2 byte-level BPE files, a SentencePiece model, or a tokenizer.json whose
// pipeline is exactly GPT-2's (BPE + ByteLevel), rewritten as vocab.json + merges.txt.
#pragma once
#include <string>

namespace attnlab::convert {

/// tokenizer.json -> `out_dir`/vocab.json and merges.txt. Anything but the GPT-2 pipeline (a
/// normalizer, another pre-tokenizer or split regex, byte fallback, a template that adds
/// special tokens) is a ConfigError naming the file and the component: attnlab would tokenize
/// differently.
void tokenizer_json_to_gpt2_files(const std::string& json_path, const std::string& out_dir);

}  // namespace attnlab::convert
