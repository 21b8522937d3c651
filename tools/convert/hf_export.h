// attnlab convert export: a softmax run with Llama or GPT-2 blocks -> a Hugging Face folder
// (config.json, model.safetensors, the tokenizer files) that transformers loads with the same
// logits (docs/conversion.md, "Export"); the inverse of hf_import.h.
#pragma once
#include <string>

namespace attnlab::convert {

struct ExportResult {
  std::string family;  ///< llama | gpt2
  int64_t tensors = 0;
};

/// `checkpoint`: a checkpoint folder, or empty for the run's newest verified one. `out` must not
/// exist; it appears complete or not at all.
ExportResult export_hf(const std::string& run, const std::string& checkpoint, const std::string& out);

}  // namespace attnlab::convert
