#include "tools/convert/hf_config.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "framework/config/config_error.h"

namespace attnlab::convert {
namespace {

using nlohmann::json;

/// Reads config fields with errors that name the file and the key.
class Fields {
 public:
  Fields(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError({fmt::format("{}: {}: {}", file_, key, what)});
  }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  int64_t integer(const std::string& key) const {
    if (!has(key)) fail(key, "missing (a positive integer is required)");
    const json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail(key, fmt::format("expected a positive integer, got {}", v.dump()));
    return v.get<int64_t>();
  }
  int64_t integer_or(const std::string& key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number(const std::string& key) const {
    if (!has(key)) fail(key, "missing (a number is required)");
    const json& v = j_.at(key);
    if (!v.is_number()) fail(key, fmt::format("expected a number, got {}", v.dump()));
    return v.get<double>();
  }
  double number_or(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }
  bool flag_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) fail(key, fmt::format("expected true or false, got {}", j_.at(key).dump()));
    return j_.at(key).get<bool>();
  }
  std::string text_or(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) fail(key, fmt::format("expected a string, got {}", j_.at(key).dump()));
    return j_.at(key).get<std::string>();
  }
  const json& raw() const { return j_; }
  const std::string& file() const { return file_; }

 private:
  const json& j_;
  std::string file_;
};

/// RoPE base and scaling, from the v5 `rope_parameters` or the older `rope_theta` + `rope_scaling`
/// (docs/conversion.md: a base silently defaulted when only one of them exists is 50x wrong).
std::string rope_yaml(const Fields& f, int64_t max_positions) {
  double base = 0;
  const json* scaling = nullptr;
  std::string where;
  if (f.has("rope_parameters")) {
    const json& p = f.raw().at("rope_parameters");
    if (!p.is_object()) f.fail("rope_parameters", "expected a mapping");
    Fields rp(p, f.file() + ": rope_parameters");
    base = rp.number("rope_theta");
    scaling = &p, where = "rope_parameters";
  } else if (f.has("rope_theta")) {
    base = f.number("rope_theta");
    if (f.has("rope_scaling")) scaling = &f.raw().at("rope_scaling"), where = "rope_scaling";
  } else {
    f.fail("rope_theta", "missing, and no rope_parameters either (the RoPE base must be stated)");
  }
  std::string out = fmt::format("    rope_base: {}\n", base);
  if (!scaling) return out;
  if (!scaling->is_object()) f.fail(where, "expected a mapping");
  Fields s(*scaling, f.file() + ": " + where);
  const std::string type = s.text_or("rope_type", s.text_or("type", "default"));
  if (s.number_or("partial_rotary_factor", 1.0) != 1.0)
    s.fail("partial_rotary_factor", "only 1.0 (RoPE on the whole head) is supported");
  if (type == "default") return out;
  if (type == "linear") return out + fmt::format("    rope_scaling: linear\n    rope_factor: {}\n", s.number("factor"));
  if (type == "llama3")
    return out + fmt::format(
                     "    rope_scaling: llama3\n    rope_factor: {}\n    rope_low_freq_factor: {}\n"
                     "    rope_high_freq_factor: {}\n    rope_original_max_len: {}\n",
                     s.number("factor"), s.number("low_freq_factor"), s.number("high_freq_factor"),
                     s.integer_or("original_max_position_embeddings", max_positions));
  s.fail("rope_type", fmt::format("'{}' is not supported (default, linear and llama3 are)", type));
}

HfArchitecture llama(const Fields& f) {
  HfArchitecture a;
  a.family = HfFamily::llama;
  a.layers = f.integer("num_hidden_layers"), a.dim = f.integer("hidden_size"), a.heads = f.integer("num_attention_heads");
  a.kv_heads = f.integer_or("num_key_value_heads", a.heads);
  if (a.heads % a.kv_heads != 0)
    f.fail("num_key_value_heads", fmt::format("{} must divide num_attention_heads {}", a.kv_heads, a.heads));
  if (!f.has("head_dim") && a.dim % a.heads != 0)
    f.fail("hidden_size", fmt::format("{} is not a multiple of num_attention_heads {} and head_dim is not set", a.dim, a.heads));
  a.head_dim = f.integer_or("head_dim", a.dim / a.heads);
  a.mlp_hidden = f.integer("intermediate_size"), a.vocab = f.integer("vocab_size");
  a.positions = f.integer_or("max_position_embeddings", 2048);
  a.tied = f.flag_or("tie_word_embeddings", false);
  const std::string act = f.text_or("hidden_act", "silu");
  if (act != "silu") f.fail("hidden_act", fmt::format("'{}': only silu (SwiGLU) is supported", act));
  a.model_yaml = fmt::format(
      "model:\n  vocab_size: {}\n  dim: {}\n  layers: {}\n  mlp_hidden: {}\n  norm_eps: {}\n  tie_embeddings: {}\n"
      "  max_seq_len: {}\n  init_std: {}\n  positions: none\n"
      "  block: {{layout: pre_norm, norm: rmsnorm, mlp: swiglu, bias: {}}}\n"
      "  mixer:\n    type: softmax\n    heads: {}\n    kv_heads: {}\n    head_dim: {}\n    rope: rotary\n"
      "    bias: {}\n{}",
      a.vocab, a.dim, a.layers, a.mlp_hidden, f.number_or("rms_norm_eps", 1e-6), a.tied, a.positions,
      f.number_or("initializer_range", 0.02), f.flag_or("mlp_bias", false), a.heads, a.kv_heads, a.head_dim,
      f.flag_or("attention_bias", false), rope_yaml(f, a.positions));
  return a;
}

HfArchitecture gpt2(const Fields& f) {
  HfArchitecture a;
  a.family = HfFamily::gpt2;
  a.layers = f.integer("n_layer"), a.dim = f.integer("n_embd"), a.heads = f.integer("n_head");
  if (a.dim % a.heads != 0) f.fail("n_embd", fmt::format("{} is not a multiple of n_head {}", a.dim, a.heads));
  a.kv_heads = a.heads, a.head_dim = a.dim / a.heads;
  a.mlp_hidden = f.integer_or("n_inner", 4 * a.dim), a.vocab = f.integer("vocab_size");
  a.positions = f.integer_or("n_positions", f.integer_or("n_ctx", 1024));
  a.tied = f.flag_or("tie_word_embeddings", true);
  const std::string act = f.text_or("activation_function", "gelu_new");
  std::string mlp;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") mlp = "gelu_tanh";
  else if (act == "gelu") mlp = "gelu";
  else f.fail("activation_function", fmt::format("'{}': gelu_new, gelu_pytorch_tanh and gelu are supported", act));
  if (!f.flag_or("scale_attn_weights", true))
    f.fail("scale_attn_weights", "false (unscaled attention logits) is not supported");
  if (f.flag_or("scale_attn_by_inverse_layer_idx", false))
    f.fail("scale_attn_by_inverse_layer_idx", "true is not supported");
  if (f.flag_or("add_cross_attention", false)) f.fail("add_cross_attention", "true: a decoder-only model is required");
  a.model_yaml = fmt::format(
      "model:\n  vocab_size: {}\n  dim: {}\n  layers: {}\n  mlp_hidden: {}\n  norm_eps: {}\n  tie_embeddings: {}\n"
      "  max_seq_len: {}\n  init_std: {}\n  positions: learned\n"
      "  block: {{layout: pre_norm, norm: layernorm, mlp: {}, bias: true}}\n"
      "  mixer:\n    type: softmax\n    heads: {}\n    kv_heads: {}\n    rope: none\n    bias: true\n",
      a.vocab, a.dim, a.layers, a.mlp_hidden, f.number_or("layer_norm_epsilon", 1e-5), a.tied, a.positions,
      f.number_or("initializer_range", 0.02), mlp, a.heads, a.heads);
  return a;
}

/// The fields of each model type that attnlab reads or knows to be irrelevant to the forward
/// pass (dropout, generation and bookkeeping). Any other field might change the model, so it is
/// an error rather than silently ignored.
void reject_unknown_fields(const Fields& f, HfFamily family) {
  static const std::set<std::string> common{
      "architectures", "model_type", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
      "dtype", "transformers_version", "use_cache", "initializer_range", "tie_word_embeddings", "_name_or_path",
      "output_attentions", "output_hidden_states", "return_dict", "is_decoder", "is_encoder_decoder",
      "tokenizer_class", "_attn_implementation_autoset", "chunk_size_feed_forward", "problem_type", "id2label",
      "label2id", "task_specific_params", "prefix", "sep_token_id", "decoder_start_token_id"};
  static const std::set<std::string> llama{
      "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
      "head_dim", "max_position_embeddings", "rms_norm_eps", "hidden_act", "attention_bias", "mlp_bias",
      "attention_dropout", "rope_theta", "rope_scaling", "rope_parameters", "pretraining_tp"};
  static const std::set<std::string> gpt2{
      "n_embd", "n_layer", "n_head", "n_inner", "n_positions", "n_ctx", "layer_norm_epsilon", "activation_function",
      "resid_pdrop", "embd_pdrop", "attn_pdrop", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
      "reorder_and_upcast_attn", "add_cross_attention", "summary_type", "summary_use_proj", "summary_activation",
      "summary_proj_to_labels", "summary_first_dropout", "n_special", "predict_special_tokens"};
  const auto& own = family == HfFamily::llama ? llama : gpt2;
  std::vector<std::string> errors;
  for (const auto& [key, value] : f.raw().items())
    if (!common.count(key) && !own.count(key))
      errors.push_back(fmt::format("{}: {}: a field attnlab does not know for this model type (it could change the "
                                   "model; docs/conversion.md lists what is read)",
                                   f.file(), key));
  if (!errors.empty()) throw ConfigError(errors);
}

}  // namespace

HfArchitecture read_hf_config(const nlohmann::json& config, const std::string& file) {
  if (!config.is_object()) throw ConfigError({file + ": expected a JSON object"});
  Fields f(config, file);
  const std::string type = f.text_or("model_type", "");
  if (type == "llama") return reject_unknown_fields(f, HfFamily::llama), llama(f);
  if (type == "gpt2") return reject_unknown_fields(f, HfFamily::gpt2), gpt2(f);
  if (type.empty()) f.fail("model_type", "missing (llama or gpt2 is required)");
  f.fail("model_type", fmt::format("'{}' is not supported; attnlab imports llama and gpt2", type));
}

HfArchitecture read_hf_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError({path + ": cannot open (a Hugging Face model folder holds config.json)"});
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError({fmt::format("{}: not valid JSON: {}", path, e.what())});
  }
  return read_hf_config(j, path);
}

}  // namespace attnlab::convert
