#include "tools/convert/hf_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "framework/config/config_error.h"

namespace attnlab::convert {
namespace {

namespace fs = std::filesystem;

std::string shape_text(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

/// One attnlab tensor: which HF tensor it comes from, the shape that tensor must have, and how
/// it becomes ours (identity, a transpose, a slice of GPT-2's fused c_attn).
struct Source {
  std::string name;
  std::vector<int64_t> shape;
  std::function<at::Tensor(const at::Tensor&)> take = [](const at::Tensor& t) { return t; };
};

using Plan = std::map<std::string, Source>;

void llama_plan(const NamedTensors& expected, Plan& plan) {
  for (const auto& [name, t] : expected) plan[name] = Source{llama_tensor_name(name), t.sizes().vec()};
}

void gpt2_plan(const HfArchitecture& a, Plan& plan) {
  const int64_t E = a.dim, F = a.mlp_hidden;
  auto transposed = [](const at::Tensor& t) { return t.t(); };
  plan["model.embed_tokens.weight"] = {"wte.weight", {a.vocab, E}};
  plan["model.embed_positions.weight"] = {"wpe.weight", {a.positions, E}};
  plan["model.norm.weight"] = {"ln_f.weight", {E}};
  plan["model.norm.bias"] = {"ln_f.bias", {E}};
  if (!a.tied) plan["model.lm_head.weight"] = {"lm_head.weight", {a.vocab, E}};
  for (int64_t i = 0; i < a.layers; ++i) {
    const std::string ours = fmt::format("model.layers.{}.", i), hf = fmt::format("h.{}.", i);
    for (const char* w : {"weight", "bias"}) {
      plan[ours + "input_layernorm." + w] = {hf + "ln_1." + w, {E}};
      plan[ours + "post_attention_layernorm." + w] = {hf + "ln_2." + w, {E}};
    }
    // c_attn packs q | k | v along its output columns; Conv1D stores [in, out].
    const char* qkv[] = {"q_proj", "k_proj", "v_proj"};
    for (int64_t j = 0; j < 3; ++j) {
      plan[ours + "mixer." + qkv[j] + ".weight"] = {hf + "attn.c_attn.weight", {E, 3 * E},
                                                    [=](const at::Tensor& t) { return t.narrow(1, j * E, E).t(); }};
      plan[ours + "mixer." + qkv[j] + ".bias"] = {hf + "attn.c_attn.bias", {3 * E},
                                                  [=](const at::Tensor& t) { return t.narrow(0, j * E, E); }};
    }
    plan[ours + "mixer.o_proj.weight"] = {hf + "attn.c_proj.weight", {E, E}, transposed};
    plan[ours + "mixer.o_proj.bias"] = {hf + "attn.c_proj.bias", {E}};
    plan[ours + "mlp.up_proj.weight"] = {hf + "mlp.c_fc.weight", {E, F}, transposed};
    plan[ours + "mlp.up_proj.bias"] = {hf + "mlp.c_fc.bias", {F}};
    plan[ours + "mlp.down_proj.weight"] = {hf + "mlp.c_proj.weight", {F, E}, transposed};
    plan[ours + "mlp.down_proj.bias"] = {hf + "mlp.c_proj.bias", {E}};
  }
}

/// HF tensors no attnlab tensor comes from but that are fine to drop: cached RoPE frequencies,
/// GPT-2's causal-mask buffers, and a tied head's copy of the embedding.
bool ignorable(const std::string& name, const HfArchitecture& a) {
  auto ends_with = [&](const char* s) {
    const std::string suffix(s);
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("rotary_emb.inv_freq") || ends_with(".attn.bias") || ends_with(".attn.masked_bias")) return true;
  return a.tied && name == "lm_head.weight";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot open"});
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string llama_tensor_name(const std::string& ours) {
  if (ours == "model.lm_head.weight") return "lm_head.weight";
  std::string hf = ours;
  const auto mixer = hf.find(".mixer.");
  if (mixer != std::string::npos) hf.replace(mixer, 7, ".self_attn.");
  return hf;
}

std::map<std::string, at::Tensor> read_hf_tensors(const std::string& dir, HfFamily family) {
  std::vector<std::string> files;
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (fs::exists(single)) {
    files.push_back(single);
  } else if (fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text(index));
    } catch (const nlohmann::json::parse_error& e) {
      throw ConfigError({fmt::format("{}: not valid JSON: {}", index, e.what())});
    }
    if (!j.contains("weight_map") || !j.at("weight_map").is_object())
      throw ConfigError({index + ": weight_map: missing (a mapping from tensor name to shard file is required)"});
    std::set<std::string> shards;
    for (const auto& [name, file] : j.at("weight_map").items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
        throw ConfigError({fmt::format("{}: weight_map: {}: expected a shard file name in the folder, got {}", index,
                                       name, file.dump())});
      shards.insert(file.get<std::string>());
    }
    for (const auto& s : shards) {
      if (!fs::is_regular_file(dir + "/" + s))
        throw ConfigError({fmt::format("{}: weight_map names shard {}, which is not in the folder", index, s)});
      files.push_back(dir + "/" + s);
    }
  } else {
    const std::string hint = fs::exists(dir + "/pytorch_model.bin")
                                 ? " (pytorch_model.bin is a pickle, which attnlab does not load; re-save the model with "
                                   "safe_serialization=True)"
                                 : "";
    throw ConfigError({fmt::format("{}: no model.safetensors or model.safetensors.index.json{}", dir, hint)});
  }
  std::map<std::string, at::Tensor> out;
  for (const auto& file : files) {
    for (auto& [name, t] : load_safetensors(file).tensors) {
      std::string key = name;
      if (family == HfFamily::gpt2 && key.rfind("transformer.", 0) == 0) key = key.substr(12);
      if (family == HfFamily::llama && key.rfind("model.", 0) != 0 && key.rfind("lm_head.", 0) != 0) key = "model." + key;
      if (!out.emplace(key, t).second) throw ConfigError({fmt::format("{}: tensor {} appears twice", file, name)});
    }
  }
  return out;
}

NamedTensors map_hf_tensors(const std::map<std::string, at::Tensor>& hf, const HfArchitecture& arch,
                            const NamedTensors& expected, const std::string& dir) {
  Plan plan;
  if (arch.family == HfFamily::llama) llama_plan(expected, plan);
  else gpt2_plan(arch, plan);
  std::vector<std::string> errors;
  std::set<std::string> used;
  NamedTensors out;
  for (const auto& [name, param] : expected) {
    auto p = plan.find(name);
    if (p == plan.end()) {
      errors.push_back(fmt::format("{}: attnlab parameter {} has no Hugging Face source (an attnlab bug)", dir, name));
      continue;
    }
    const Source& src = p->second;
    auto it = hf.find(src.name);
    if (it == hf.end()) {
      errors.push_back(fmt::format("{}: tensor {} is missing (needed for {})", dir, src.name, name));
      continue;
    }
    used.insert(src.name);
    if (it->second.sizes().vec() != src.shape) {
      errors.push_back(fmt::format("{}: tensor {} has shape {}, config.json implies {}", dir, src.name,
                                   shape_text(it->second.sizes()), shape_text(src.shape)));
      continue;
    }
    const at::ScalarType st = it->second.scalar_type();
    if (st != at::kFloat && st != at::kBFloat16 && st != at::kHalf && st != at::kDouble) {
      errors.push_back(fmt::format("{}: tensor {} is {}; F32, BF16, F16 or F64 is required", dir, src.name,
                                   c10::toString(st)));
      continue;
    }
    at::Tensor t = src.take(it->second).to(param.scalar_type()).contiguous();
    if (t.sizes() != param.sizes())
      throw std::logic_error(fmt::format("import: {} maps to shape {}, the model has {}", name, shape_text(t.sizes()),
                                         shape_text(param.sizes())));
    out.emplace_back(name, t);
  }
  for (const auto& [name, t] : hf)
    if (!used.count(name) && !ignorable(name, arch))
      errors.push_back(fmt::format("{}: tensor {} {} is not part of the model config.json describes", dir, name,
                                   shape_text(t.sizes())));
  if (!errors.empty()) throw ConfigError(errors);
  return out;
}

}  // namespace attnlab::convert
