// Hugging Face import (tools/convert; docs/conversion.md) without transformers: config.json
// fields and their errors, the GPT-2 tensor mapping (Conv1D transpose, c_attn split) and its
// errors, the run folder import writes (or, on any error, does not write), and what export
// refuses. The logits
// against transformers itself are tests/convert/hf_oracle_test.sh.
#include <ATen/ops/randn.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/config_error.h"
#include "framework/train/setup.h"
#include "tests/common/test_util.h"
#include "tools/convert/hf_config.h"
#include "tools/convert/hf_export.h"
#include "tools/convert/hf_import.h"
#include "tools/convert/hf_tokenizer.h"
#include "tools/convert/hf_weights.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    std::string all;
    for (const auto& p : e.problems()) all += p + "\n";
    return all;
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

json llama_config() {
  return json{{"model_type", "llama"}, {"hidden_size", 32}, {"intermediate_size", 48}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 300}, {"rms_norm_eps", 1e-6},
              {"max_position_embeddings", 128}, {"rope_theta", 500000.0}};
}

json gpt2_config() {
  return json{{"model_type", "gpt2"}, {"n_embd", 16}, {"n_layer", 2}, {"n_head", 2}, {"n_positions", 32},
              {"vocab_size", 40}, {"activation_function", "gelu_new"}};
}

TEST(HfConfig, LlamaFieldsBecomeTheModelSection) {
  const auto a = convert::read_hf_config(llama_config(), "config.json");
  EXPECT_EQ(a.kv_heads, 2);
  EXPECT_EQ(a.head_dim, 8);
  EXPECT_FALSE(a.tied);  // Llama's default
  for (const char* line : {"kv_heads: 2", "rope_base: 500000", "norm_eps: 1e-06", "mlp_hidden: 48", "type: softmax"})
    EXPECT_NE(a.model_yaml.find(line), std::string::npos) << line << " in\n" << a.model_yaml;
}

TEST(HfConfig, RopeScalingInEitherSchema) {
  json old = llama_config();
  old["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  json v5 = llama_config();
  v5.erase("rope_theta");
  v5["rope_parameters"] = old["rope_scaling"];
  v5["rope_parameters"]["rope_theta"] = 500000.0;
  for (const json& c : {old, v5}) {
    const std::string y = convert::read_hf_config(c, "config.json").model_yaml;
    for (const char* line : {"rope_scaling: llama3", "rope_factor: 8", "rope_original_max_len: 64", "rope_base: 500000"})
      EXPECT_NE(y.find(line), std::string::npos) << line << " in\n" << y;
  }
}

TEST(HfConfig, ErrorsNameTheFileAndTheField) {
  json unknown = llama_config();
  unknown["model_type"] = "mamba";
  EXPECT_NE(error_of([&] { convert::read_hf_config(unknown, "m/config.json"); }).find("m/config.json: model_type: 'mamba'"),
            std::string::npos);
  json no_rope = llama_config();
  no_rope.erase("rope_theta");
  EXPECT_NE(error_of([&] { convert::read_hf_config(no_rope, "config.json"); }).find("rope_theta: missing"),
            std::string::npos);
  json yarn = llama_config();
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of([&] { convert::read_hf_config(yarn, "config.json"); }).find("'yarn' is not supported"),
            std::string::npos);
  json relu = gpt2_config();
  relu["activation_function"] = "relu";
  EXPECT_NE(error_of([&] { convert::read_hf_config(relu, "config.json"); }).find("activation_function: 'relu'"),
            std::string::npos);
  json unknown_field = llama_config();
  unknown_field["sliding_window"] = 4096;  // would change the model: refused, not ignored
  EXPECT_NE(error_of([&] { convert::read_hf_config(unknown_field, "config.json"); }).find("sliding_window: a field"),
            std::string::npos);
  json bad_heads = llama_config();
  bad_heads["num_key_value_heads"] = 3;
  EXPECT_NE(error_of([&] { convert::read_hf_config(bad_heads, "config.json"); }).find("num_key_value_heads: 3 must divide"),
            std::string::npos);
}

/// A GPT-2 folder with random weights in HF layout and a two-token BPE vocabulary.
std::map<std::string, at::Tensor> write_gpt2_folder(const std::string& dir, const json& cfg) {
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg.dump();
  json vocab;
  for (int i = 0; i < 40; ++i) vocab[std::string(1, static_cast<char>('A' + i))] = i;
  std::ofstream(dir + "/vocab.json") << vocab.dump();
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
  const int64_t E = 16;
  std::map<std::string, at::Tensor> t{{"transformer.wte.weight", at::randn({40, E})},
                                      {"transformer.wpe.weight", at::randn({32, E})},
                                      {"transformer.ln_f.weight", at::randn({E})},
                                      {"transformer.ln_f.bias", at::randn({E})}};
  for (int i = 0; i < 2; ++i) {
    const std::string h = fmt::format("transformer.h.{}.", i);
    for (const char* n : {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.c_proj.bias", "mlp.c_proj.bias"})
      t[h + n] = at::randn({E});
    t[h + "attn.c_attn.weight"] = at::randn({E, 3 * E});
    t[h + "attn.c_attn.bias"] = at::randn({3 * E});
    t[h + "attn.c_proj.weight"] = at::randn({E, E});
    t[h + "mlp.c_fc.weight"] = at::randn({E, 4 * E});
    t[h + "mlp.c_fc.bias"] = at::randn({4 * E});
    t[h + "mlp.c_proj.weight"] = at::randn({4 * E, E});
    t[h + "attn.bias"] = at::ones({1, 1, 32, 32});  // the causal-mask buffer: dropped
  }
  NamedTensors named(t.begin(), t.end());
  save_safetensors(dir + "/model.safetensors", named);
  return t;
}

convert::ImportOptions options(const std::string& hf, const std::string& out) {
  convert::ImportOptions o;
  o.hf_dir = hf, o.out_dir = out, o.seq_len = 16;
  return o;
}

TEST(HfImport, Gpt2WeightsLandTransposedAndSplit) {
  const std::string dir = testing::temp_dir("hf-gpt2");
  const auto hf = write_gpt2_folder(dir + "/hf", gpt2_config());
  const auto r = convert::import_hf(options(dir + "/hf", dir + "/run"));
  EXPECT_EQ(r.family, "gpt2");
  EXPECT_EQ(r.tokenizer, "gpt2");
  EXPECT_TRUE(fs::exists(dir + "/run/tokenizer/vocab.json"));
  EXPECT_FALSE(fs::exists(dir + "/run.importing"));
  const Checkpoint ck = load_checkpoint(dir + "/run");
  EXPECT_EQ(ck.state.step, 0);
  const auto& w = ck.model.tensors;
  const at::Tensor c_attn = hf.at("transformer.h.1.attn.c_attn.weight");
  EXPECT_TRUE(w.at("model.layers.1.mixer.k_proj.weight").equal(c_attn.narrow(1, 16, 16).t().contiguous()));
  EXPECT_TRUE(w.at("model.layers.1.mixer.v_proj.bias").equal(hf.at("transformer.h.1.attn.c_attn.bias").narrow(0, 32, 16)));
  EXPECT_TRUE(w.at("model.layers.0.mlp.down_proj.weight").equal(hf.at("transformer.h.0.mlp.c_proj.weight").t().contiguous()));
  EXPECT_TRUE(w.at("model.embed_positions.weight").equal(hf.at("transformer.wpe.weight")));
  EXPECT_TRUE(w.at("model.norm.bias").equal(hf.at("transformer.ln_f.bias")));
  EXPECT_EQ(w.count("model.lm_head.weight"), 0u);  // tied
  // The run folder is one `eval`, `generate` and `train --resume` accept: its config loads and
  // builds the model the checkpoint fits.
  RunConfig cfg = load_run_config(dir + "/run/config.yaml", {});
  LanguageModel m = build_model(cfg, c10::Device(c10::kCPU));
  load_weights(m, ck.model, ck.dir);
  // Never over an existing folder.
  EXPECT_NE(error_of([&] { convert::import_hf(options(dir + "/hf", dir + "/run")); }).find("already exists"),
            std::string::npos);
}

TEST(HfImport, BadTensorsAreNamedAndLeaveNoRunFolder) {
  const std::string dir = testing::temp_dir("hf-gpt2-bad");
  auto hf = write_gpt2_folder(dir + "/hf", gpt2_config());
  auto rewrite = [&](const std::map<std::string, at::Tensor>& t) {
    NamedTensors named(t.begin(), t.end());
    save_safetensors(dir + "/hf/model.safetensors", named);
  };
  auto t = hf;
  t["transformer.h.0.attn.c_attn.weight"] = at::randn({16, 47});
  t.erase("transformer.h.1.mlp.c_fc.bias");
  t["transformer.h.0.attn.extra"] = at::randn({3});
  rewrite(t);
  const std::string e = error_of([&] { convert::import_hf(options(dir + "/hf", dir + "/run")); });
  EXPECT_NE(e.find("tensor h.0.attn.c_attn.weight has shape [16, 47], config.json implies [16, 48]"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor h.1.mlp.c_fc.bias is missing"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor h.0.attn.extra [3] is not part of the model"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir + "/run"));
  EXPECT_FALSE(fs::exists(dir + "/run.importing"));
  // An unreadable tokenizer choice is an error before any weight is read.
  fs::remove(dir + "/hf/vocab.json");
  rewrite(hf);
  EXPECT_NE(error_of([&] { convert::import_hf(options(dir + "/hf", dir + "/run")); }).find("no tokenizer"),
            std::string::npos);
}

TEST(HfImport, BadFilesAreNamedAndLeaveNoRunFolder) {
  const std::string dir = testing::temp_dir("hf-gpt2-files");
  write_gpt2_folder(dir + "/hf", gpt2_config());
  auto fails_naming = [&](const std::string& what) {
    const std::string e = error_of([&] { convert::import_hf(options(dir + "/hf", dir + "/run")); });
    EXPECT_NE(e.find(what), std::string::npos) << "expected '" << what << "' in: " << e;
    EXPECT_FALSE(fs::exists(dir + "/run"));
    EXPECT_FALSE(fs::exists(dir + "/run.importing"));
  };
  // A truncated shard.
  fs::resize_file(dir + "/hf/model.safetensors", fs::file_size(dir + "/hf/model.safetensors") - 100);
  fails_naming("model.safetensors");
  // An index naming a shard that is not there.
  fs::remove(dir + "/hf/model.safetensors");
  std::ofstream(dir + "/hf/model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"wte.weight": "model-00001-of-00002.safetensors"}})";
  fails_naming("weight_map names shard model-00001-of-00002.safetensors, which is not in the folder");
  // A tokenizer with more tokens than the model has rows.
  write_gpt2_folder(dir + "/hf", gpt2_config());
  fs::remove(dir + "/hf/model.safetensors.index.json");
  json vocab;
  for (int i = 0; i < 45; ++i) vocab[fmt::format("t{}", i)] = i;
  std::ofstream(dir + "/hf/vocab.json") << vocab.dump();
  fails_naming("vocab_size 40 is smaller than the gpt2 tokenizer's 45 tokens");
}

TEST(HfTokenizer, OnlyGpt2sPipelineIsRewritten) {
  const std::string dir = testing::temp_dir("hf-tokjson");
  json tok = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", json::array({json::array({"a", "b"})})}}},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"added_tokens", json::array({{{"id", 3}, {"content", "<|endoftext|>"}}})}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  convert::tokenizer_json_to_gpt2_files(dir + "/tokenizer.json", dir + "/out");
  std::ifstream merges(dir + "/out/merges.txt");
  std::string header, first;
  std::getline(merges, header), std::getline(merges, first);
  EXPECT_EQ(first, "a b");
  EXPECT_EQ(json::parse(std::ifstream(dir + "/out/vocab.json")).at("<|endoftext|>"), 3);
  // Llama 3's pipeline splits with its own regex before ByteLevel: refused, not approximated.
  tok["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array()}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  EXPECT_NE(error_of([&] { convert::tokenizer_json_to_gpt2_files(dir + "/tokenizer.json", dir + "/out2"); })
                .find("pre_tokenizer: not GPT-2's ByteLevel"),
            std::string::npos);
}

TEST(HfExport, RefusesWhatLlamaAndGpt2CannotExpress) {
  // The errors come from the config alone, before any checkpoint is read or anything written.
  const std::string dir = testing::temp_dir("hf-export");
  auto run_with = [&](const std::string& name, const std::string& model) {
    const std::string run = fmt::format("{}/{}", dir, name);
    fs::create_directories(run);
    std::ofstream(run + "/config.yaml") << "run: {name: " << name << ", dir: " << dir << "}\n" << model;
    return run;
  };
  const std::string gla = run_with("gla", "model: {mixer: {type: gla}}\n");
  EXPECT_NE(error_of([&] { convert::export_hf(gla, "", dir + "/out"); }).find("need softmax; this run has gla"),
            std::string::npos);
  const std::string post = run_with("post", "model: {mixer: {type: softmax}, block: {layout: post_norm}}\n");
  EXPECT_NE(error_of([&] { convert::export_hf(post, "", dir + "/out"); }).find("is neither a Llama block"),
            std::string::npos);
  const std::string norope = run_with("norope", "model: {mixer: {type: softmax, rope: none}}\n");
  EXPECT_NE(error_of([&] { convert::export_hf(norope, "", dir + "/out"); }).find("rope: none has no Llama"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

}  // namespace
}  // namespace attnlab
