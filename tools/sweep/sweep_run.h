// `attnlab sweep` (docs/ablations.md, "Sweeps"): every run of a sweep trained by its own
// `attnlab train` process (J at a time, each with its share of the cores; a point whose
// parallel.dp x parallel.cp asks for more than one process goes through `attnlab launch` with
// that many ranks, which split the share), resumable, and one line per run in <sweep>/sweep.jsonl.
//   <run.dir>/<run.name>/             the sweep folder (the recipe's own run folder)
//     configs/<run>.yaml              the resolved config each run trains
//     logs/<run>.log                  its output
//     <run>/                          its run folder (metrics.jsonl, checkpoints, ...)
//     sweep.jsonl                     overrides, parameters, FLOPs/token, final and best val
//                                     loss, other val metrics, tokens/s, wall time, status
// Re-running the command skips runs that finished, resumes those with checkpoints, and starts
// the rest; a run that fails is recorded with its error and the others go on.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::sweep {

struct SweepOptions {
  std::string recipe;
  std::vector<std::string> overrides;  ///< --set, applied to every run
  std::vector<std::string> grid;       ///< --grid key=v1,v2,...
  int64_t seeds = 0;                   ///< 0: the recipe's sweep.seeds, else 1
  int64_t jobs = 1;                    ///< runs at a time
  std::string binary = "/proc/self/exe";  ///< the attnlab that trains each run
  bool quiet = false;                  ///< no per-run progress lines (tests)
};

/// Final and best val/loss, the last value of every other val/ metric and the median tokens/s
/// of `run_dir`/metrics.jsonl into `rec` (a sweep.jsonl line); "finished" when the evaluation
/// of step `steps` is there. `attnlab report` reads run folders outside a sweep with it too.
void read_run_results(const std::string& run_dir, int64_t steps, nlohmann::json& rec);

/// Runs the sweep; 0 when every run finished, 1 when one failed (all were tried), throws
/// ConfigError for a malformed sweep before anything runs.
int run_sweep(const SweepOptions& o);

}  // namespace attnlab::sweep
