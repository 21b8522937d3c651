// Keeping a run's logs one curve long across resumes. A run killed at step 57 after its step-50
// checkpoint has logged steps 51..57; the resumed run logs them again. At every start the trainer
// cuts metrics.jsonl and its own TensorBoard event files back to the steps <= the step it starts
// from (each file rewritten atomically), so plots and tables show each step once.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnlab {

struct TrimResult {
  int64_t metrics_rows_dropped = 0, events_dropped = 0;
};

/// (tag, step) of every scalar in one of our event files, for tests and tools.
std::vector<std::pair<std::string, int64_t>> read_event_scalars(const std::string& path);

/// Drops rows/events with step > `step` (and a torn last record) from <run_dir>'s logs.
TrimResult trim_run_logs(const std::string& run_dir, int64_t step);

}  // namespace attnlab
