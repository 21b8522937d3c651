// attnlab generate: sample from a checkpoint with the mixers' recurrent/cached decoding,
// O(1) model calls per new token.
#include <ATen/ops/multinomial.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/topk.h>
#include <ATen/Context.h>
#include <fmt/format.h>

#include <cmath>

#include "framework/checkpoint/checkpoint.h"
#include "framework/log/console.h"
#include "framework/train/setup.h"
#include "tools/attnlab/commands.h"

namespace attnlab::cli {

void add_generate(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("generate", "sample text from a checkpoint");
  struct Args {
    std::string run, ckpt, prompt = "\n";
    int64_t tokens = 200, top_k = 0, seed = 0;
    double temperature = 0.8;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("run", a->run, "run folder")->required();
  cmd->add_option("--checkpoint", a->ckpt, "a specific checkpoint folder");
  cmd->add_option("--prompt", a->prompt, "text to continue");
  cmd->add_option("--tokens", a->tokens, "tokens to generate")->check(CLI::PositiveNumber);
  // CLI::Range lets NaN through (every comparison with NaN is false), so test finiteness.
  const CLI::Validator finite_temperature(
      [](std::string& text) -> std::string {
        double t = 0;
        if (!CLI::detail::lexical_cast(text, t) || !std::isfinite(t) || t < 0 || t > 1e4)
          return "--temperature must be a finite number in [0, 1e4], got " + text;
        return "";
      },
      "FLOAT in [0, 1e4]");
  cmd->add_option("--temperature", a->temperature, "0 = greedy")->check(finite_temperature);
  cmd->add_option("--top-k", a->top_k, "sample from the k most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->seed, "sampling seed")->check(CLI::NonNegativeNumber);
  cmd->callback([a, &action] {
    action = [a] {
      // Usage errors first, before anything slow or anything that can fail for other reasons.
      RunConfig cfg = load_config_or_run(a->run, {});
      auto tok = make_tokenizer(cfg.data);
      std::vector<int32_t> ids = tok->encode(a->prompt);
      if (ids.empty()) ids.push_back(tok->eot_id());
      const auto prompt_len = static_cast<int64_t>(ids.size());
      if (a->tokens > cfg.model.max_seq_len - prompt_len)  // no overflow for --tokens near INT64_MAX
        throw ConfigError({fmt::format("--tokens {}: the prompt's {} tokens plus --tokens exceed "
                                       "model.max_seq_len {}",
                                       a->tokens, prompt_len, cfg.model.max_seq_len)});
      const int64_t total = prompt_len + a->tokens;
      Checkpoint ck = load_checkpoint_verbose(a->ckpt.empty() ? a->run : a->ckpt);
      const c10::Device device = resolve_device(cfg.train);
      LanguageModel model = build_model(cfg, device);
      load_weights(model, ck.model, ck.dir + "/model.safetensors");
      model->eval();
      at::NoGradGuard no_grad;
      at::manual_seed(static_cast<uint64_t>(a->seed));
      ModelState state = model->init_state(1, total);
      at::Tensor logits;
      auto feed = [&](int32_t id) {
        logits = model->step(at::tensor({static_cast<int64_t>(id)}, at::kLong).to(device), state);
      };
      for (int32_t id : ids) feed(id);
      if (!console_write(stdout, a->prompt)) return 0;
      for (int64_t i = 0; i < a->tokens; ++i) {
        at::Tensor l = logits[0].to(at::kFloat).narrow(0, 0, tok->vocab_size());  // [V]
        int64_t next;
        if (a->temperature == 0) {
          next = l.argmax().item<int64_t>();
        } else {
          l = l / a->temperature;
          if (a->top_k > 0 && a->top_k < l.size(0)) {
            auto kth = std::get<0>(at::topk(l, a->top_k)).min();
            l = l.masked_fill(l < kth, -std::numeric_limits<double>::infinity());
          }
          next = at::multinomial(at::softmax(l, 0), 1).item<int64_t>();
        }
        if (!console_write(stdout, tok->decode({static_cast<int32_t>(next)}))) return 0;  // reader gone
        feed(static_cast<int32_t>(next));
      }
      fmt::print("\n");
      return 0;
    };
  });
}

}  // namespace attnlab::cli
