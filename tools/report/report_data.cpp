#include "tools/report/report_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "tools/sweep/sweep_run.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace attnlab::report {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<json> json_lines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception&) {  // a line cut by a crash; the rest is still worth plotting
    }
  }
  return out;
}

RunData load_run(const std::string& dir, const std::string& name) {
  RunData r;
  r.dir = dir, r.name = name;
  r.config_yaml = slurp(dir + "/config.yaml");
  for (const json& row : json_lines(dir + "/metrics.jsonl")) {
    if (!row.contains("step")) continue;
    const double step = row["step"].get<double>();
    for (const auto& [k, v] : row.items())
      if (k != "step" && v.is_number()) r.curves[k].emplace_back(step, v.get<double>());
  }
  if (fs::exists(dir + "/needle.json")) {
    try {
      r.needle = json::parse(slurp(dir + "/needle.json"));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("report: {}/needle.json is not JSON: {}", dir, e.what()));
    }
  }
  // A run outside a sweep gets the sweep record's fields from its own metrics.
  sweep::read_run_results(dir, -1, r.record);
  return r;
}

SweepData load_sweep(const std::string& dir) {
  SweepData s;
  s.dir = dir;
  s.name = fs::path(dir).lexically_normal().filename().string();
  if (s.name.empty()) s.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  std::set<std::string> seen;
  for (const json& rec : json_lines(dir + "/sweep.jsonl")) {
    if (!rec.contains("name")) continue;
    const std::string name = rec["name"].get<std::string>();
    RunData r = fs::exists(dir + "/" + name + "/metrics.jsonl") ? load_run(dir + "/" + name, name) : RunData{};
    r.name = name, r.dir = dir + "/" + name;
    json merged = rec;
    if (r.record.contains("metrics") && !merged.contains("metrics")) merged["metrics"] = r.record["metrics"];
    r.record = merged;
    for (const auto& o : rec.value("overrides", std::vector<std::string>{})) {
      const auto eq = o.find('=');
      if (eq == std::string::npos) continue;
      r.values[o.substr(0, eq)] = o.substr(eq + 1);
      if (seen.insert(o.substr(0, eq)).second) s.axes.push_back(o.substr(0, eq));
    }
    // sweep.jsonl appends a line per invocation: the newest line of a run wins.
    bool replaced = false;
    for (RunData& old : s.runs)
      if (old.name == name) old = r, replaced = true;
    if (!replaced) s.runs.push_back(std::move(r));
  }
  return s;
}

}  // namespace

double RunData::last(const std::string& metric) const {
  auto it = curves.find(metric);
  return it == curves.end() || it->second.empty() ? NAN : it->second.back().second;
}

ReportInput load_report_input(const std::vector<std::string>& paths, const std::vector<std::string>& bench_files) {
  ReportInput in;
  for (const std::string& f : bench_files) {
    BenchData b{f, {}};
    for (json& row : json_lines(f))
      if (row.contains("mixer") && row.contains("impl") && row.contains("seq") && row.contains("fwd_bwd_ms"))
        b.rows.push_back(std::move(row));
    if (b.rows.empty())
      throw std::runtime_error(fmt::format("report: {} holds no rows of attnlab bench mixer --jsonl", f));
    in.benches.push_back(std::move(b));
  }
  for (const std::string& p : paths) {
    if (fs::exists(p + "/sweep.jsonl")) {
      in.sweeps.push_back(load_sweep(p));
    } else if (fs::exists(p + "/metrics.jsonl")) {
      std::string name = fs::path(p).lexically_normal().filename().string();
      if (name.empty()) name = fs::path(p).lexically_normal().parent_path().filename().string();
      in.runs.push_back(load_run(p, name));
    } else {
      throw std::runtime_error(fmt::format("report: {} is neither a run folder (metrics.jsonl) nor a sweep "
                                           "folder (sweep.jsonl)", p));
    }
  }
  return in;
}

}  // namespace attnlab::report
