#include "tools/convert/verify.h"

#include <ATen/ops/tensor.h>
#include <fmt/format.h>

#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/config_error.h"
#include "framework/train/setup.h"

namespace attnlab::convert {
namespace {

at::Tensor need(const SafetensorsFile& f, const std::string& file, const std::string& name, int64_t dims) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) throw ConfigError({fmt::format("{}: tensor {} is missing", file, name)});
  if (it->second.dim() != dims)
    throw ConfigError({fmt::format("{}: tensor {} must have {} dimensions, has {}", file, name, dims, it->second.dim())});
  return it->second;
}

}  // namespace

VerifyResult verify_against_reference(const std::string& run, const std::string& reference, double tolerance) {
  const SafetensorsFile ref = load_safetensors(reference);
  const at::Tensor ids = need(ref, reference, "input_ids", 2).to(at::kLong);
  const at::Tensor expected = need(ref, reference, "logits", 3).to(at::kDouble);
  const at::Tensor prompt = need(ref, reference, "greedy_prompt", 1).to(at::kLong);
  const at::Tensor greedy = need(ref, reference, "greedy_tokens", 1).to(at::kLong);

  const RunConfig cfg = load_run_config(run + "/config.yaml", {});
  if (expected.size(2) != cfg.model.vocab_size || expected.size(0) != ids.size(0) || expected.size(1) != ids.size(1))
    throw ConfigError({fmt::format("{}: logits [{}, {}, {}] do not match input_ids [{}, {}] and vocab_size {}", reference,
                                   expected.size(0), expected.size(1), expected.size(2), ids.size(0), ids.size(1),
                                   cfg.model.vocab_size)});
  Checkpoint ck = load_checkpoint(run);
  LanguageModel model = build_model(cfg, c10::Device(c10::kCPU));
  load_weights(model, ck.model, ck.dir + "/model.safetensors");
  model->eval();
  at::NoGradGuard no_grad;

  VerifyResult r;
  const at::Tensor got = model->forward(ids, MixerContext{}).to(at::kDouble);
  r.logits_max_abs = (got - expected).abs().max().item<double>();
  r.logits_rel_rms = ((got - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt()).item<double>();

  const int64_t P = prompt.size(0), G = greedy.size(0);
  ModelState state = model->init_state(1, P + G);
  at::Tensor logits;
  for (int64_t i = 0; i < P; ++i) logits = model->step(prompt.narrow(0, i, 1), state);
  r.greedy_total = G;
  for (int64_t i = 0; i < G; ++i) {
    const int64_t next = logits[0].argmax().item<int64_t>();
    if (next != greedy[i].item<int64_t>()) break;
    ++r.greedy_matched;
    logits = model->step(at::tensor({next}, at::kLong), state);
  }
  r.passed = r.logits_rel_rms <= tolerance && r.greedy_matched == G;
  return r;
}

}  // namespace attnlab::convert
