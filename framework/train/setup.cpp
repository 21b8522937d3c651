#include "framework/train/setup.h"

#include <ATen/core/Tensor.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <filesystem>

#include "framework/util/atomic_file.h"

#include "framework/data/prepare.h"

namespace fs = std::filesystem;

namespace attnlab {

c10::Device resolve_device(const TrainConfig& cfg) {
  const bool cuda = torch::cuda::is_available();
  if (cfg.device == "cuda" && !cuda)
    throw std::runtime_error("train.device is cuda but no CUDA device is available");
  return (cfg.device == "cuda" || (cfg.device == "auto" && cuda)) ? c10::Device(c10::kCUDA)
                                                                  : c10::Device(c10::kCPU);
}

std::unique_ptr<Tokenizer> make_tokenizer(const DataConfig& cfg) {
  return make_tokenizer(cfg.tokenizer, cfg.tokenizer_path);
}

std::shared_ptr<const TokenStream> open_split(const RunConfig& cfg, const std::string& split) {
  const DataConfig& d = cfg.data;
  const bool has_shards = fs::is_directory(d.dir) && [&] {
    for (const auto& e : fs::directory_iterator(d.dir))
      if (e.path().filename().string().rfind("train_", 0) == 0) return true;
    return false;
  }();
  if (!has_shards && !d.prepare_from.empty()) {
    auto tok = make_tokenizer(d);
    const std::string tmp = d.dir + ".tmp." + std::to_string(::getpid());
    remove_tree(tmp);
    auto stats = prepare_shards({d.prepare_from}, *tok, tmp, d.val_fraction,
                                static_cast<uint64_t>(cfg.run.seed));
    if (fs::path(d.dir).has_parent_path()) fs::create_directories(fs::path(d.dir).parent_path());
    remove_tree(d.dir);
    fs::rename(tmp, d.dir);
    fmt::print("data: prepared {} documents from {} files of {}: {} train / {} val tokens in {}\n",
               stats.documents, stats.files, d.prepare_from, stats.train_tokens, stats.val_tokens,
               d.dir);
  }
  return std::make_shared<const TokenStream>(d.dir, split);
}

LanguageModel build_model(const RunConfig& cfg, c10::Device device) {
  auto tok = make_tokenizer(cfg.data);
  if (tok->vocab_size() > cfg.model.vocab_size)
    throw ConfigError({fmt::format("config: model.vocab_size ({}) is smaller than the {} "
                                   "tokenizer's vocabulary ({})",
                                   cfg.model.vocab_size, cfg.data.tokenizer, tok->vocab_size())});
  at::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  LanguageModel model(cfg.model);
  model->to(device);
  return model;
}

NamedTensors named_parameters(const LanguageModel& model) {
  NamedTensors out;
  for (const auto& item : model->named_parameters()) out.emplace_back("model." + item.key(), item.value());
  return out;
}

void load_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& origin) {
  at::NoGradGuard no_grad;
  for (auto& [name, p] : named_parameters(model)) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) throw std::runtime_error(origin + ": missing tensor " + name);
    if (it->second.sizes() != p.sizes())
      throw std::runtime_error(fmt::format("{}: tensor {} has shape {}, the model expects {}", origin,
                                           name, c10::str(it->second.sizes()), c10::str(p.sizes())));
    p.copy_(it->second);
  }
}

}  // namespace attnlab
