#include "tests/common/test_util.h"

#include <ATen/ops/stack.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "framework/config/config_error.h"
#include "framework/model/mixer.h"
#include "framework/util/atomic_file.h"
#include <fstream>
#include <random>

namespace attnlab::testing {

at::Tensor decode_token_by_token(Mixer& m, const at::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  auto state = m.init_state(B, T);
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < T; ++t) steps.push_back(m.step(x.select(1, t), *state));
  EXPECT_EQ(state->position, T);
  return at::stack(steps, 1);
}

void copy_parameters(Mixer& from, Mixer& to) {
  torch::NoGradGuard ng;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters())
    if (src.contains(p.key())) p.value().copy_(src[p.key()]);
}

double rel_rms(const at::Tensor& ref, const at::Tensor& got) {
  at::Tensor r = ref.detach().to(at::kDouble), g = got.detach().to(at::kDouble);
  const double denom = r.pow(2).mean().sqrt().item<double>();
  return (g - r).pow(2).mean().sqrt().item<double>() / std::max(denom, 1e-300);
}

void expect_close(const std::string& name, const at::Tensor& ref, const at::Tensor& got, double tol) {
  ASSERT_EQ(ref.sizes(), got.sizes()) << name;
  const double abs = (got.detach().to(at::kDouble) - ref.detach().to(at::kDouble)).abs().max().item<double>();
  const double rel = rel_rms(ref, got);
  SCOPED_TRACE(fmt::format("{}: max abs err {:.3e}, rel rms err {:.3e}", name, abs, rel));
  EXPECT_LE(rel, tol) << name << ": max abs err " << abs << ", rel rms err " << rel;
}

std::string temp_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  static int counter = 0;
  fs::path p = fs::temp_directory_path() /
               fmt::format("attnlab-test-{}-{}-{}", tag, ::getpid(), counter++);
  remove_tree(p.string());
  fs::create_directories(p);
  return p.string();
}

std::string write_corpus(const std::string& dir, int documents) {
  static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran",
                                "to", "see", "what", "was", "there", "in", "garden", "old", "tree"};
  std::mt19937 rng(7);
  std::ofstream f(dir + "/corpus.txt");
  for (int d = 0; d < documents; ++d) {
    const int n = 10 + static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) f << words[rng() % 18] << (i % 9 == 8 ? ".\n" : " ");
    f << "\n%\n";
  }
  return dir + "/corpus.txt";
}

std::string tiny_recipe(const std::string& dir, const std::string& corpus, const std::string& extra) {
  const std::string path = dir + "/tiny.yaml";
  std::ofstream f(path);
  f << fmt::format(R"(run: {{name: tiny, dir: {0}/runs, seed: 7}}
model:
  vocab_size: 260
  dim: 32
  layers: 2
  max_seq_len: 64
  mixer: {{type: softmax, heads: 4, kv_heads: 2}}
data: {{dir: {0}/data, prepare_from: {1}, seq_len: 32, val_fraction: 0.1}}
optim: {{lr: 0.01, warmup_steps: 2}}
train: {{steps: 10, batch_size: 4, threads: 1}}
eval: {{every: 0, batches: 2}}
checkpoint: {{every: 0, keep: 2}}
log: {{every: 5}}
)",
                   dir, corpus)
    << extra;
  return path;
}

TinyRun::TinyRun(const std::string& extra) {
  dir = temp_dir("run");
  recipe = tiny_recipe(dir, write_corpus(dir), extra);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

}  // namespace attnlab::testing
