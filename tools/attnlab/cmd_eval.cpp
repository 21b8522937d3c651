// attnlab eval RUN [--checkpoint DIR] [--task loss|needle ...]: the validation loss of a
// checkpoint, or a needle-in-a-haystack grid (tools/eval/needle.h) written to <RUN>/needle.json.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/exp.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "framework/config/config_error.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "framework/util/atomic_file.h"
#include "tools/attnlab/commands.h"
#include "tools/eval/needle.h"

namespace attnlab::cli {
namespace {

struct EvalArgs {
  std::string run, checkpoint, task = "loss", out;
  std::vector<std::string> sets;
  eval::NeedleOptions needle;
};

int needle_task(const EvalArgs& a, const RunConfig& cfg, Trainer& trainer, const std::string& checkpoint) {
  if (is_synthetic_source(cfg.data.source))
    throw ConfigError({fmt::format("eval --task needle: {} trains on data.source: {}, which has no text to hide "
                                   "a needle in", a.run, cfg.data.source)});
  for (int64_t L : a.needle.lengths)
    if (L > cfg.model.max_seq_len)
      throw ConfigError({fmt::format("eval --lengths: {} exceeds the model's max_seq_len ({})", L, cfg.model.max_seq_len)});
  const auto tok = make_tokenizer(cfg.data);
  const auto haystack = open_split(cfg, "val");
  LanguageModel& model = trainer.model();
  const c10::Device device = resolve_device(cfg.train);
  auto logits = [&](const at::Tensor& inputs) {
    at::NoGradGuard no_grad;
    MixerContext ctx;
    ctx.kernel = cfg.train.kernel;
    return model->forward(inputs.to(device), ctx);
  };
  const std::vector<eval::NeedleCell> cells = eval::run_needle(logits, *tok, *haystack, a.needle);
  fmt::print("{}: {} trials per cell, haystack from {}\n{}", checkpoint, a.needle.trials, haystack->name(),
             eval::needle_table(cells));
  const bool folder = std::filesystem::is_directory(a.run);
  const std::string out = !a.out.empty() ? a.out : folder ? a.run + "/needle.json" : "";
  if (!out.empty()) {
    write_file_atomic(out, eval::needle_json(cells, checkpoint));
    fmt::print("wrote {} (attnlab report draws it as a heat map)\n", out);
  }
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("eval", "validation loss of a checkpoint, or a needle-in-a-haystack grid");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("run", a->run, "run folder (uses its config.yaml and latest checkpoint)")->required();
  cmd->add_option("--checkpoint", a->checkpoint, "a specific checkpoint folder");
  cmd->add_option("--set", a->sets, "override a config value, e.g. eval.batches=32");
  cmd->add_option("--task", a->task, "loss: validation loss and perplexity; needle: passkey retrieval")
      ->check(CLI::IsMember({"loss", "needle"}));
  cmd->add_option("--lengths", a->needle.lengths, "needle: context lengths in tokens")->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--depths", a->needle.depths, "needle: needle positions as a share of the text, 0..1")
      ->delimiter(',')->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--trials", a->needle.trials, "needle: trials per (length, depth)")->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", a->needle.seed, "needle: seed of the keys and text positions");
  cmd->add_option("--out", a->out, "needle: where to write the JSON (default <run>/needle.json)");
  cmd->callback([=, &action] {
    action = [=] {
      RunConfig cfg = load_config_or_run(a->run, a->sets);
      Checkpoint ck = load_checkpoint_verbose(a->checkpoint.empty() ? a->run : a->checkpoint);
      Trainer trainer(cfg, World{}, TrainerOptions{false, false, true, {}});
      load_weights(trainer.model(), ck.model, ck.dir + "/model.safetensors");
      trainer.model()->eval();
      if (a->task == "needle") return needle_task(*a, cfg, trainer, ck.dir);
      const double loss = trainer.evaluate();
      std::string extra;
      for (const auto& [name, value] : trainer.last_validation()) extra += fmt::format(" | {} {:.4f}", name, value);
      fmt::print("{}: val loss {:.4f} | val ppl {:.3f}{} | {} batches of {}x{}\n", ck.dir, loss, std::exp(loss), extra,
                 cfg.eval.batches, cfg.train.batch_size, cfg.data.seq_len);
      return 0;
    };
  });
}

}  // namespace attnlab::cli
