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

/// One `attnlab bench mixer --jsonl` file: rows of (mixer, impl, T, tokens, times, peak_mb;
/// peak_rss_mb in older files).
struct BenchData {
  std::string path;
  std::vector<nlohmann::json> rows;
};

struct ReportInput {
  std::vector<SweepData> sweeps;
  std::vector<RunData> runs;  ///< run folders given directly
  std::vector<BenchData> benches;
};

/// Reads every path (a sweep folder has sweep.jsonl, a run folder metrics.jsonl) and every
/// bench file; throws std::runtime_error naming a path that is neither, or a bench file with
/// no rows.
ReportInput load_report_input(const std::vector<std::string>& paths, const std::vector<std::string>& bench_files = {});

}  // namespace attnlab::report
