// What `attnlab report` reads: run folders (metrics.jsonl, config.yaml, needle.json) and sweep
// folders (sweep.jsonl plus one run folder per point). Nothing here renders.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace attnlab::report {

struct RunData {
  std::string name, dir;
  std::string config_yaml;                                    ///< the resolved config, as saved
  std::map<std::string, std::vector<std::pair<double, double>>> curves;  ///< metric -> (step, value)
  std::map<std::string, std::string> values;  ///< the sweep axes' values of this run (key -> YAML text)
  nlohmann::json record;                      ///< its sweep.jsonl line, or the same fields from its metrics
  nlohmann::json needle;                      ///< needle.json of `attnlab eval --task needle`, if any
  /// The last value of `metric` in its curve, or NaN.
  double last(const std::string& metric) const;
};

struct SweepData {
  std::string name, dir;
  std::vector<std::string> axes;  ///< sweep keys in the order of the runs' names (run.seed included)
  std::vector<RunData> runs;
};

struct ReportInput {
  std::vector<SweepData> sweeps;
  std::vector<RunData> runs;  ///< run folders given directly
};

/// Reads every path (a sweep folder has sweep.jsonl, a run folder metrics.jsonl); throws
/// std::runtime_error naming a path that is neither.
ReportInput load_report_input(const std::vector<std::string>& paths);

}  // namespace attnlab::report
