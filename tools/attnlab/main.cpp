// attnlab: parse the command line, dispatch to one subcommand, map errors to exit codes.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "framework/config/config_error.h"
#include "framework/log/console.h"
#include "tools/attnlab/commands.h"

int main(int argc, char** argv) {
  attnlab::ignore_sigpipe();  // a closed stdout is an error to handle, not a silent death
  CLI::App app{"attnlab: train and study efficient-attention language models"};
  app.require_subcommand(1);
  attnlab::cli::Action action;
  attnlab::cli::add_train(app, action);
  attnlab::cli::add_eval(app, action);
  attnlab::cli::add_generate(app, action);
  attnlab::cli::add_data(app, action);
  attnlab::cli::add_config(app, action);
  attnlab::cli::add_list(app, action);
  attnlab::cli::add_bench(app, action);
  attnlab::cli::add_launch(app, action);
  attnlab::cli::add_sweep(app, action);
  attnlab::cli::add_report(app, action);
  attnlab::cli::add_convert(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    return action();
  } catch (const attnlab::ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
