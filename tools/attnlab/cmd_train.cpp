// attnlab train | bench train (eval: cmd_eval.cpp)
#include <ATen/ops/exp.h>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "tools/attnlab/commands.h"
#include "tools/convert/linearize.h"

namespace attnlab::cli {

RunConfig load_config_or_run(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;  // a hostile path (too long, unreadable) is the recipe loader's error to report
  if (std::filesystem::is_directory(path, ec)) return load_run_config(path + "/config.yaml", overrides);
  return load_run_config(path, overrides);
}

Checkpoint load_checkpoint_verbose(const std::string& path) {
  std::vector<std::string> rejected;
  Checkpoint ck = load_checkpoint(path, &rejected);
  for (const auto& why : rejected) fmt::print(stderr, "warning: skipping {}\n", why);
  return ck;
}

void add_train(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("train", "train a model from a YAML recipe");
  auto recipe = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto resume = std::make_shared<bool>(false);
  cmd->add_option("recipe", *recipe, "recipe YAML file")->required();
  cmd->add_option("--set", *sets, "override a config value: a.b.c=value (repeatable)");
  cmd->add_flag("--resume", *resume, "continue from the run's latest checkpoint");
  cmd->callback([=, &action] {
    action = [=] {
      install_stop_handlers();
      // A `convert:` section makes the run a linearization of a softmax teacher (docs/conversion.md).
      if (convert::is_linearize_recipe(*recipe, *sets)) return convert::linearize(*recipe, *sets, *resume);
      if (load_recipe(*recipe, *sets).root["sweep"])
        throw ConfigError({fmt::format("{}: sweep: this recipe is a sweep; run it with `attnlab sweep {}`", *recipe, *recipe)});
      RunConfig cfg = load_run_config(*recipe, *sets);
      Trainer trainer(cfg, world_from_env(), TrainerOptions{*resume, true, false, {}});
      return trainer.train();
    };
  });
}

void add_bench(CLI::App& app, Action& action) {
  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  auto* cmd = bench->add_subcommand("train", "time training steps of a recipe (no files written)");
  auto recipe = std::make_shared<std::string>();
  auto steps = std::make_shared<int64_t>(20);
  auto warmup = std::make_shared<int64_t>(3);
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--recipe", *recipe, "recipe YAML file")->required();
  cmd->add_option("--steps", *steps, "timed steps")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", *warmup, "untimed steps first");
  cmd->add_option("--set", *sets, "override a config value");
  cmd->callback([=, &action] {
    action = [=] {
      std::vector<std::string> o = *sets;
      o.push_back("train.steps=" + std::to_string(*steps + *warmup));
      RunConfig cfg = load_run_config(*recipe, o);
      Trainer trainer(cfg, World{}, TrainerOptions{false, false, true, {}});
      for (int64_t i = 0; i < *warmup; ++i) trainer.step();
      const auto t0 = std::chrono::steady_clock::now();
      double fwd_bwd = 0, clip = 0, optim = 0;
      for (int64_t i = 0; i < *steps; ++i) {
        StepResult r = trainer.step();
        fwd_bwd += r.fwd_bwd_s, clip += r.clip_s, optim += r.optim_s;
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tokens = static_cast<double>(cfg.train.batch_size * cfg.train.grad_accum *
                                                cfg.data.seq_len) * *steps;
      fmt::print("bench train {}: {} steps | {:.1f} ms/step | {:.0f} tokens/s | {:.2f} GFLOP/s\n",
                 *recipe, *steps, 1e3 * s / *steps, tokens / s,
                 tokens / s * trainer.flops_per_token() / 1e9);
      fmt::print("  per step: data+forward+backward {:.1f} ms | grad norm+clip {:.1f} ms | "
                 "optimizer {:.1f} ms\n",
                 1e3 * fwd_bwd / *steps, 1e3 * clip / *steps, 1e3 * optim / *steps);
      return 0;
    };
  });
  add_bench_mixer(*bench, action);
  add_bench_collectives(*bench, action);
  add_bench_context(*bench, action);
}

}  // namespace attnlab::cli
