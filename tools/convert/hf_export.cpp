#include "tools/convert/hf_export.h"

#include <ATen/ops/cat.h>
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/config_error.h"
#include "framework/config/run_config.h"
#include "framework/util/atomic_file.h"
#include "layers/softmax/softmax_attention.h"
#include "tools/convert/hf_weights.h"
#include "tools/convert/staged_folder.h"

namespace attnlab::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const layers::SoftmaxOptions& softmax_options(const RunConfig& cfg, const std::string& run) {
  if (cfg.model.pattern.size() != 1)
    throw ConfigError({run + ": model.pattern: export needs one mixer for every layer (model.mixer)"});
  const MixerSpec& first = cfg.model.pattern.at(0);
  if (first.type != "softmax")
    throw ConfigError({fmt::format("{}: model.mixer: export writes Llama / GPT-2 models, which need softmax; this run "
                                   "has {} (linearised models stay attnlab runs, loadable by attnlab)", run, first.type)});
  return dynamic_cast<detail::OptionsBox<layers::SoftmaxOptions>&>(*first.options).value;
}

json llama_config(const ModelConfig& m, const layers::SoftmaxOptions& o, const std::string& run) {
  if (o.rope != "rotary") throw ConfigError({run + ": model.mixer.rope: none has no Llama equivalent"});
  const int64_t heads = o.heads, kv = o.kv_heads ? o.kv_heads : o.heads, d = o.head_dim ? o.head_dim : m.dim / o.heads;
  json rope = {{"rope_type", "default"}, {"rope_theta", o.rope_base}};
  if (o.rope_scaling == "linear") rope = {{"rope_type", "linear"}, {"rope_theta", o.rope_base}, {"factor", o.rope_factor}};
  if (o.rope_scaling == "llama3")
    rope = {{"rope_type", "llama3"}, {"rope_theta", o.rope_base}, {"factor", o.rope_factor},
            {"low_freq_factor", o.rope_low_freq_factor}, {"high_freq_factor", o.rope_high_freq_factor},
            {"original_max_position_embeddings", o.rope_original_max_len}};
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", m.dim},
          {"intermediate_size", m.resolved_mlp_hidden()}, {"num_hidden_layers", m.layers},
          {"num_attention_heads", heads}, {"num_key_value_heads", kv}, {"head_dim", d},
          {"max_position_embeddings", m.max_seq_len}, {"rms_norm_eps", m.norm_eps}, {"hidden_act", "silu"},
          {"attention_bias", o.bias}, {"mlp_bias", m.block.bias}, {"tie_word_embeddings", m.tie_embeddings},
          {"vocab_size", m.vocab_size}, {"rope_parameters", rope}, {"dtype", "float32"}};
}

json gpt2_config(const ModelConfig& m, const layers::SoftmaxOptions& o, const std::string& run) {
  if (o.rope != "none" || !o.bias || !m.block.bias || !m.tie_embeddings || (o.kv_heads && o.kv_heads != o.heads) ||
      (o.head_dim && o.head_dim * o.heads != m.dim))
    throw ConfigError({run + ": a GPT-2 export needs softmax {rope: none, bias: true} with MHA, model.block.bias "
                             "and tie_embeddings"});
  return {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"n_embd", m.dim}, {"n_layer", m.layers},
          {"n_head", o.heads}, {"n_inner", m.resolved_mlp_hidden()}, {"n_positions", m.max_seq_len},
          {"layer_norm_epsilon", m.norm_eps},
          {"activation_function", m.block.mlp == "gelu" ? "gelu" : "gelu_new"}, {"vocab_size", m.vocab_size},
          {"tie_word_embeddings", true}, {"dtype", "float32"}};
}

/// Our tensors in GPT-2's names and Conv1D layouts (c_attn = [q | k | v] along its columns).
NamedTensors gpt2_tensors(const std::map<std::string, at::Tensor>& w, int64_t layers) {
  NamedTensors out{{"wte.weight", w.at("model.embed_tokens.weight")},
                   {"wpe.weight", w.at("model.embed_positions.weight")},
                   {"ln_f.weight", w.at("model.norm.weight")},
                   {"ln_f.bias", w.at("model.norm.bias")}};
  for (int64_t i = 0; i < layers; ++i) {
    const std::string o = fmt::format("model.layers.{}.", i), h = fmt::format("h.{}.", i);
    auto t = [&](const std::string& n) { return w.at(o + n).t().contiguous(); };
    for (const char* x : {"weight", "bias"}) {
      out.emplace_back(h + "ln_1." + x, w.at(o + "input_layernorm." + x));
      out.emplace_back(h + "ln_2." + x, w.at(o + "post_attention_layernorm." + x));
    }
    out.emplace_back(h + "attn.c_attn.weight", at::cat({t("mixer.q_proj.weight"), t("mixer.k_proj.weight"),
                                                        t("mixer.v_proj.weight")}, 1));
    out.emplace_back(h + "attn.c_attn.bias", at::cat({w.at(o + "mixer.q_proj.bias"), w.at(o + "mixer.k_proj.bias"),
                                                      w.at(o + "mixer.v_proj.bias")}, 0));
    out.emplace_back(h + "attn.c_proj.weight", t("mixer.o_proj.weight"));
    out.emplace_back(h + "attn.c_proj.bias", w.at(o + "mixer.o_proj.bias"));
    out.emplace_back(h + "mlp.c_fc.weight", t("mlp.up_proj.weight"));
    out.emplace_back(h + "mlp.c_fc.bias", w.at(o + "mlp.up_proj.bias"));
    out.emplace_back(h + "mlp.c_proj.weight", t("mlp.down_proj.weight"));
    out.emplace_back(h + "mlp.c_proj.bias", w.at(o + "mlp.down_proj.bias"));
  }
  return out;
}

void copy_tokenizer(const DataConfig& d, const std::string& to) {
  if (d.tokenizer == "gpt2") {
    fs::copy_file(d.tokenizer_path + "/vocab.json", to + "/vocab.json");
    fs::copy_file(d.tokenizer_path + "/merges.txt", to + "/merges.txt");
  } else if (d.tokenizer == "sentencepiece") {
    fs::copy_file(d.tokenizer_path, to + "/tokenizer.model");
  }  // byte: Hugging Face has no equivalent file; the weights still load
}

}  // namespace

ExportResult export_hf(const std::string& run, const std::string& checkpoint, const std::string& out) {
  const RunConfig cfg = load_run_config(run + "/config.yaml", {});
  const ModelConfig& m = cfg.model;
  const layers::SoftmaxOptions& o = softmax_options(cfg, run);
  ExportResult r;
  json config;
  if (m.block.layout == "pre_norm" && m.block.norm == "rmsnorm" && m.block.mlp == "swiglu" && m.positions == "none") {
    r.family = "llama", config = llama_config(m, o, run);
  } else if (m.block.layout == "pre_norm" && m.block.norm == "layernorm" &&
             (m.block.mlp == "gelu_tanh" || m.block.mlp == "gelu") && m.positions == "learned") {
    r.family = "gpt2", config = gpt2_config(m, o, run);
  } else {
    throw ConfigError({fmt::format("{}: model.block {{layout: {}, norm: {}, mlp: {}}} with positions {} is neither "
                                   "a Llama block (pre_norm, rmsnorm, swiglu, none) nor a GPT-2 block (pre_norm, "
                                   "layernorm, gelu_tanh, learned)",
                                   run, m.block.layout, m.block.norm, m.block.mlp, m.positions)});
  }
  if (fs::exists(out) || fs::is_symlink(out))
    throw ConfigError({fmt::format("--hf {}: already exists; export never overwrites a folder", out)});
  const Checkpoint ck = load_checkpoint(checkpoint.empty() ? run : checkpoint);
  NamedTensors tensors;
  if (r.family == "gpt2") {
    tensors = gpt2_tensors(ck.model.tensors, m.layers);
  } else {
    for (const auto& [name, t] : ck.model.tensors) tensors.emplace_back(llama_tensor_name(name), t);
  }
  write_staged_folder(out, ".exporting", [&](const std::string& staging) {
    save_safetensors(staging + "/model.safetensors", tensors, {{"format", "pt"}});
    write_file_atomic(staging + "/config.json", config.dump(2) + "\n");
    copy_tokenizer(cfg.data, staging);
  });
  r.tensors = static_cast<int64_t>(tensors.size());
  return r;
}

}  // namespace attnlab::convert
