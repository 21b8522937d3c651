// Hugging Face config.json -> the attnlab model it describes (docs/conversion.md, "Import").
// Llama (model_type llama: RoPE with its rope_scaling variants, GQA, SwiGLU, RMSNorm, tied or
// untied head) and GPT-2 (learned positions, LayerNorm, GELU MLP, biases, tied head). Anything
// else, or a field whose value attnlab would silently compute differently, is a ConfigError
// naming config.json and the field.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>

namespace attnlab::convert {

enum class HfFamily { llama, gpt2 };

struct HfArchitecture {
  HfFamily family = HfFamily::llama;
  int64_t layers = 0, dim = 0, heads = 0, kv_heads = 0, head_dim = 0, mlp_hidden = 0, vocab = 0, positions = 0;
  bool tied = true;
  /// The attnlab recipe of the model: the `model:` section (and nothing else), YAML.
  std::string model_yaml;
};

/// `file` names config.json in errors.
HfArchitecture read_hf_config(const nlohmann::json& config, const std::string& file);
HfArchitecture read_hf_config_file(const std::string& path);

}  // namespace attnlab::convert
