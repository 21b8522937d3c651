#include "tools/convert/hf_import.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "framework/checkpoint/tensor_copy.h"
#include "framework/config/config_error.h"
#include "framework/data/tokenizer.h"
#include "framework/train/setup.h"
#include "framework/util/atomic_file.h"
#include "tools/convert/hf_config.h"
#include "tools/convert/hf_tokenizer.h"
#include "tools/convert/hf_weights.h"
#include "tools/convert/run_folder.h"
#include "tools/convert/staged_folder.h"

namespace attnlab::convert {
namespace {

namespace fs = std::filesystem;

/// Copies the model's tokenizer into <run>/tokenizer and returns the data-section lines naming
/// it: GPT-2 byte-level BPE (vocab.json + merges.txt) or SentencePiece (tokenizer.model).
std::string import_tokenizer(const ImportOptions& o, const HfArchitecture& arch, const std::string& staging,
                             const std::string& config_dir, std::string& kind) {
  const std::string& hf = o.hf_dir;
  const fs::path to = fs::path(staging) / "tokenizer";
  if (o.tokenizer == "byte") {
    if (arch.vocab < 257)
      throw ConfigError({fmt::format("--tokenizer byte: the model's vocab_size {} is below the byte tokenizer's 257",
                                     arch.vocab)});
    kind = "byte";
    return "  tokenizer: byte\n";
  }
  if (o.tokenizer != "auto") throw ConfigError({"--tokenizer: expected auto or byte, got " + o.tokenizer});
  if (fs::exists(hf + "/vocab.json") && fs::exists(hf + "/merges.txt")) {
    fs::create_directories(to);
    fs::copy_file(hf + "/vocab.json", to / "vocab.json");
    fs::copy_file(hf + "/merges.txt", to / "merges.txt");
    kind = "gpt2";
    return fmt::format("  tokenizer: gpt2\n  tokenizer_path: {}/tokenizer\n", config_dir);
  }
  if (fs::exists(hf + "/tokenizer.model")) {
    fs::create_directories(to);
    fs::copy_file(hf + "/tokenizer.model", to / "tokenizer.model");
    kind = "sentencepiece";
    return fmt::format("  tokenizer: sentencepiece\n  tokenizer_path: {}/tokenizer/tokenizer.model\n", config_dir);
  }
  if (fs::exists(hf + "/tokenizer.json")) {  // rewritten as GPT-2 files, or refused with the reason
    tokenizer_json_to_gpt2_files(hf + "/tokenizer.json", to.string());
    kind = "gpt2 (from tokenizer.json)";
    return fmt::format("  tokenizer: gpt2\n  tokenizer_path: {}/tokenizer\n", config_dir);
  }
  const std::string what = "no tokenizer (vocab.json + merges.txt, tokenizer.model or tokenizer.json)";
  throw ConfigError({fmt::format("{}: {}; attnlab imports GPT-2 byte-level BPE and SentencePiece tokenizers "
                                 "(docs/conversion.md); --tokenizer byte imports the weights with attnlab's byte tokenizer", hf, what)});
}

}  // namespace

ImportResult import_hf(const ImportOptions& o) {
  const HfArchitecture arch = read_hf_config_file(o.hf_dir + "/config.json");
  const fs::path out = fs::absolute(o.out_dir).lexically_normal();
  if (fs::exists(out) || fs::is_symlink(out))
    throw ConfigError({fmt::format("--out {}: already exists; import writes a new run folder and never "
                                   "overwrites one", out.string())});
  if (out.filename().empty()) throw ConfigError({"--out: a folder name is required, got " + o.out_dir});
  ImportResult r;
  r.family = arch.family == HfFamily::llama ? "llama" : "gpt2";
  write_staged_folder(out.string(), ".importing", [&](const std::string& staging) {
    // The config names the tokenizer where the staging folder holds it while the model is built
    // (which checks that the vocabulary covers it), and where the run folder will hold it after.
    const std::string data_lines = import_tokenizer(o, arch, staging, /*config_dir=*/staging, r.tokenizer);
    const int64_t seq_len = o.seq_len > 0 ? o.seq_len : std::min<int64_t>(1024, arch.positions);
    const std::string recipe = fmt::format(
        "# Imported by attnlab convert import from {} ({}).\n{}run:\n  name: {}\n  dir: {}\n"
        "data:\n  dir: {}/data\n  prepare_from: {}\n{}  seq_len: {}\ntrain:\n  dtype: fp32\n",
        fs::absolute(o.hf_dir).string(), r.family, arch.model_yaml, out.filename().string(),
        out.parent_path().string(), out.string(), o.prepare_from, data_lines, seq_len);
    write_file_atomic(staging + "/import-recipe.yaml", recipe);
    RunConfig cfg = load_run_config(staging + "/import-recipe.yaml", o.overrides);
    fs::remove(staging + "/import-recipe.yaml");
    const std::string staged_tokenizer = cfg.data.tokenizer_path;
    if (const int64_t words = make_tokenizer(cfg.data)->vocab_size(); words > arch.vocab)
      throw ConfigError({fmt::format("{}/config.json: vocab_size {} is smaller than the {} tokenizer's {} tokens: the "
                                     "tokenizer does not belong to this model",
                                     o.hf_dir, arch.vocab, r.tokenizer, words)});

    LanguageModel model = build_model(cfg, c10::Device(c10::kCPU));
    const NamedTensors params = named_parameters(model);
    const NamedTensors weights = map_hf_tensors(read_hf_tensors(o.hf_dir, arch.family), arch, params, o.hf_dir);
    std::map<std::string, at::Tensor> by_name(weights.begin(), weights.end());
    copy_tensors_exact(params, by_name, o.hf_dir);
    r.parameters = model->num_parameters();
    if (!staged_tokenizer.empty())
      cfg.data.tokenizer_path = out.string() + staged_tokenizer.substr(staging.size());

    write_weights_as_run(staging, params, cfg);
  });
  r.run_dir = out.string();
  return r;
}

}  // namespace attnlab::convert
