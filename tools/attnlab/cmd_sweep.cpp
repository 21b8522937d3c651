// attnlab sweep RECIPE [--grid key=v1,v2,...]... [--seeds N] [--jobs J] [--set a.b=v]...
// (tools/sweep/sweep_run.h; docs/ablations.md, "Sweeps").
#include "tools/attnlab/commands.h"
#include "tools/sweep/sweep_run.h"

namespace attnlab::cli {

void add_sweep(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("sweep", "train every combination of a grid of config values, resumably");
  auto o = std::make_shared<sweep::SweepOptions>();
  cmd->add_option("recipe", o->recipe, "recipe YAML file (its sweep: section, if any, adds axes)")->required();
  cmd->add_option("--grid", o->grid, "an axis: key=v1,v2,... (repeatable; values may be YAML flow maps)");
  cmd->add_option("--seeds", o->seeds, "run every combination with run.seed, run.seed + 1, ... (default 1)");
  cmd->add_option("--jobs", o->jobs, "runs at a time, each with its share of the cores (default 1)");
  cmd->add_option("--set", o->overrides, "override a config value for every run (repeatable)");
  cmd->callback([=, &action] {
    action = [=] { return sweep::run_sweep(*o); };
  });
}

}  // namespace attnlab::cli
