// Hugging Face safetensors weights -> attnlab parameter names and layouts (docs/conversion.md,
// "Tensor names"). Reads model.safetensors or the shards of model.safetensors.index.json, maps
// every tensor the architecture needs (GPT-2's Conv1D weights transposed and c_attn split into
// q, k, v), and checks names and shapes: a missing tensor, a wrong shape (naming the tensor and
// both shapes) or a tensor nothing maps is a ConfigError.
#pragma once
#include <map>
#include <string>

#include "framework/checkpoint/safetensors.h"
#include "tools/convert/hf_config.h"

namespace attnlab::convert {

/// The Hugging Face Llama name of an attnlab parameter (the attention sits under self_attn, the
/// head outside `model.`); every other name is the same.
std::string llama_tensor_name(const std::string& ours);

/// Every tensor of the folder's safetensors file(s), by name (a GPT-2 `transformer.` prefix and a
/// missing Llama `model.` prefix normalised away).
std::map<std::string, at::Tensor> read_hf_tensors(const std::string& dir, HfFamily family);

/// `expected`: the attnlab model's parameters (name -> tensor, for shape and dtype). Returns them
/// filled from `hf`, converted to each parameter's dtype.
NamedTensors map_hf_tensors(const std::map<std::string, at::Tensor>& hf, const HfArchitecture& arch,
                            const NamedTensors& expected, const std::string& dir);

}  // namespace attnlab::convert
