// The `attnlab` subcommands. Each registers its CLI11 options and a callback that returns an
// exit code: 0 ok, 1 runtime failure, 2 usage or configuration error.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/run_config.h"

namespace attnlab::cli {

using Action = std::function<int()>;

void add_train(CLI::App& app, Action& action);
void add_eval(CLI::App& app, Action& action);
void add_generate(CLI::App& app, Action& action);
void add_data(CLI::App& app, Action& action);
void add_config(CLI::App& app, Action& action);
void add_list(CLI::App& app, Action& action);
void add_bench(CLI::App& app, Action& action);
void add_launch(CLI::App& app, Action& action);
/// `sweep` (cmd_sweep.cpp).
void add_sweep(CLI::App& app, Action& action);
/// `report` (cmd_report.cpp).
void add_report(CLI::App& app, Action& action);
/// `convert import | verify` (cmd_convert.cpp).
void add_convert(CLI::App& app, Action& action);
/// `bench mixer`, a subcommand of `bench` (cmd_bench_mixer.cpp).
void add_bench_mixer(CLI::App& bench, Action& action);
/// `bench collectives` (cmd_bench_collectives.cpp).
void add_bench_collectives(CLI::App& bench, Action& action);
/// `bench context` (cmd_bench_context.cpp).
void add_bench_context(CLI::App& bench, Action& action);

/// load_checkpoint(), printing a warning for each newer checkpoint that failed verification.
Checkpoint load_checkpoint_verbose(const std::string& path);

/// A recipe file, or a run folder (then its saved config.yaml), plus --set overrides.
RunConfig load_config_or_run(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace attnlab::cli
