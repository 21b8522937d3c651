#include "framework/train/setup.h"

#include <ATen/core/Tensor.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "framework/checkpoint/tensor_copy.h"
#include "framework/data/mqar.h"
#include "framework/data/prepare.h"
#include "framework/data/sampler.h"
#include "framework/util/atomic_file.h"
#include "framework/util/run_lock.h"

namespace fs = std::filesystem;

namespace attnlab {

c10::Device resolve_device(const TrainConfig& cfg) {
  const bool cuda = torch::cuda::is_available();
  if (cfg.device == "cuda" && !cuda)
    throw std::runtime_error("train.device is cuda but no CUDA device is available");
  return (cfg.device == "cuda" || (cfg.device == "auto" && cuda)) ? c10::Device(c10::kCUDA)
                                                                  : c10::Device(c10::kCPU);
}

void check_thread_count(const TrainConfig& cfg) {
  const auto cores = static_cast<int64_t>(std::thread::hardware_concurrency());
  if (cores > 0 && cfg.threads > cores)
    throw ConfigError({fmt::format("config: train.threads ({}) exceeds the {} cores of this machine; "
                                   "use 0 for all of them", cfg.threads, cores)});
}

std::unique_ptr<Tokenizer> make_tokenizer(const DataConfig& cfg) {
  return make_tokenizer(cfg.tokenizer, cfg.tokenizer_path);
}

namespace {
bool holds_train_shards(const std::string& dir) {
  // error_code forms: another process may be renaming its prepared folder over `dir` right now.
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind("train_", 0) == 0) return true;
  return false;
}

}  // namespace

std::shared_ptr<const TokenStream> open_split(const RunConfig& cfg, const std::string& split) {
  const DataConfig& d = cfg.data;
  if (!d.prepare_from.empty() && !holds_train_shards(d.dir)) {
    // Sweep jobs and data-parallel ranks may all find data.dir missing at once. One prepares
    // under the lock; the others wait and then find its shards. Without the lock a late
    // preparer replaces the folder while an early one is opening it (docs/data.md).
    WaitingFileLock lock(prepare_lock_path(d.dir));
    if (!holds_train_shards(d.dir)) {
      // data.dir is replaced only when absent, empty or ours (docs/data.md).
      auto tok = make_tokenizer(d);
      auto stats = prepare_shards({d.prepare_from}, *tok, d.dir, d.val_fraction,
                                  static_cast<uint64_t>(cfg.run.seed), 100'000'000, "config: data.dir");
      fmt::print("data: prepared {} documents from {} files of {}: {} train / {} val tokens in {}\n",
                 stats.documents, stats.files, d.prepare_from, stats.train_tokens, stats.val_tokens,
                 d.dir);
    }
  }
  return std::make_shared<const TokenStream>(d.dir, split);
}

std::unique_ptr<DataSource> make_data_source(const RunConfig& cfg, const std::string& split,
                                             int64_t rank, int64_t world) {
  const auto seed = static_cast<uint64_t>(cfg.run.seed);
  const bool val = split == "val";  // every rank reads validation in the same order
  if (val) rank = 0, world = 1;
  if (cfg.data.source == "mqar")
    return std::make_unique<MqarSource>(cfg.data.mqar, MqarShape{cfg.data.seq_len, cfg.model.vocab_size},
                                        seed, val, rank, world);
  return std::make_unique<ShardSource>(open_split(cfg, split), cfg.data.seq_len, seed, rank, world);
}

LanguageModel build_model(const RunConfig& cfg, c10::Device device) {
  auto tok = make_tokenizer(cfg.data);
  if (!is_synthetic_source(cfg.data.source) && tok->vocab_size() > cfg.model.vocab_size)
    throw ConfigError({fmt::format("config: model.vocab_size ({}) is smaller than the {} "
                                   "tokenizer's vocabulary ({})",
                                   cfg.model.vocab_size, cfg.data.tokenizer, tok->vocab_size())});
  at::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  LanguageModel model(cfg.model);
  // fp64 parameters (initialised as in fp32, then widened): for tests of exactness.
  if (cfg.train.dtype == "fp64") model->to(at::kDouble);
  model->to(device);
  return model;
}

NamedTensors named_parameters(const LanguageModel& model) {
  NamedTensors out;
  for (const auto& item : model->named_parameters()) out.emplace_back("model." + item.key(), item.value());
  return out;
}

void load_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& origin) {
  copy_tensors_exact(named_parameters(model), file.tensors, origin);
}

}  // namespace attnlab
