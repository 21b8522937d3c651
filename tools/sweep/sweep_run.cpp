#include "tools/sweep/sweep_run.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/config_error.h"
#include "framework/config/run_config.h"
#include "framework/log/console.h"
#include "framework/train/setup.h"
#include "framework/util/atomic_file.h"
#include "framework/util/child_process.h"
#include "framework/util/run_lock.h"
#include "tools/sweep/sweep_plan.h"

namespace attnlab::sweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock = std::chrono::steady_clock;

void say(const std::string& text) { console_write(stdout, text); }

/// The recipe with `overrides`, its sweep: section left out (a run does not sweep).
RunConfig config_without_sweep(const std::string& recipe, const std::vector<std::string>& overrides) {
  YamlSource src = load_recipe(recipe, overrides);
  src.root.remove("sweep");
  return parse_run_config(src);
}

/// One run: its plan, its resolved config (when it parsed) and what became of it.
struct Job {
  SweepRun run;
  std::string config_file, log_file, run_dir;
  int64_t steps = 0;
  int64_t processes = 1;  ///< parallel.dp x parallel.cp: more than one goes through `attnlab launch`
  json record;  ///< the sweep.jsonl line
  pid_t pid = -1;
  clock::time_point started;
};

std::map<std::string, json> read_records(const std::string& file) {
  std::map<std::string, json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      out[j.at("name").get<std::string>()] = j;
    } catch (const std::exception&) {  // a line cut by a crash: that run is simply redone
    }
  }
  return out;
}

pid_t start_child(const std::string& binary, const std::vector<std::string>& args, const std::string& log_file) {
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("sweep: cannot write {}: {}", log_file, std::strerror(errno)));
  const pid_t pid = spawn_child(binary, args, {}, fd, "sweep");  // a run does not outlive its sweep
  ::close(fd);
  return pid;
}

/// The last line of the run's log that names an error (what sweep.jsonl records).
std::string error_line(const std::string& log_file) {
  std::ifstream in(log_file);
  std::string last, any;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) any = line;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) last = line;
  }
  return last.empty() ? any : last;
}

std::string cell(const json& j, const char* key, const char* format) {
  if (!j.contains(key) || j[key].is_null()) return "–";
  return fmt::format(fmt::runtime(format), j[key].get<double>());
}

void print_table(const std::vector<Job>& jobs, const std::vector<std::string>& keys) {
  // Task runs (data.source: mqar) also report their answer accuracy.
  bool accuracy = false;
  for (const Job& j : jobs) accuracy |= j.record.contains("metrics") && j.record["metrics"].contains("accuracy");
  std::string out = "\n| run |";
  for (const auto& k : keys) out += fmt::format(" {} |", k);
  out += fmt::format(" parameters | final val loss | best val loss |{} tokens/s | wall s | status |\n|---|",
                     accuracy ? " accuracy |" : "");
  for (size_t i = 0; i < keys.size() + (accuracy ? 1 : 0); ++i) out += "---|";
  out += "---|---|---|---|---|---|\n";
  for (const Job& j : jobs) {
    out += fmt::format("| {} |", j.run.name);
    for (const auto& [k, v] : j.run.values) out += fmt::format(" {} |", v);
    out += fmt::format(" {} | {} | {} |{} {} | {} | {} |\n",
                       j.record.contains("parameters") ? fmt::format("{:.3f}M", j.record["parameters"].get<double>() / 1e6) : "–",
                       cell(j.record, "final_val_loss", "{:.4f}"), cell(j.record, "best_val_loss", "{:.4f}"),
                       accuracy ? fmt::format(" {} |", j.record.contains("metrics")
                                                           ? cell(j.record["metrics"], "accuracy", "{:.3f}")
                                                           : "–")
                                : "",
                       cell(j.record, "tokens_per_s", "{:.0f}"), cell(j.record, "wall_s", "{:.0f}"),
                       j.record.value("status", std::string("?")));
  }
  say(out);
}

}  // namespace

/// Final and best val/loss, the last value of every other val/ metric, and the median tokens/s
/// of the run's metrics.jsonl; "finished" when the last step's evaluation is there.
void read_run_results(const std::string& run_dir, int64_t steps, json& rec) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<double> tps;
  double best = 0, final_loss = 0;
  bool any = false, finished = false;
  json metrics = json::object();
  for (std::string line; std::getline(in, line);) {
    json row;
    try {
      row = json::parse(line);
    } catch (const std::exception&) {
      continue;
    }
    if (row.contains("perf/tokens_per_s")) tps.push_back(row["perf/tokens_per_s"].get<double>());
    if (!row.contains("val/loss")) continue;
    const double l = row["val/loss"].get<double>();
    best = any ? std::min(best, l) : l, final_loss = l, any = true;
    finished = row.value("step", int64_t{-1}) == steps;
    for (const auto& [k, v] : row.items())
      if (k.rfind("val/", 0) == 0 && k != "val/loss" && k != "val/perplexity") metrics[k.substr(4)] = v;
  }
  if (any) rec["final_val_loss"] = final_loss, rec["best_val_loss"] = best;
  rec["metrics"] = metrics;
  if (!tps.empty()) {
    std::nth_element(tps.begin(), tps.begin() + static_cast<std::ptrdiff_t>(tps.size() / 2), tps.end());
    rec["tokens_per_s"] = tps[tps.size() / 2];
  }
  rec["finished"] = finished;
}

int run_sweep(const SweepOptions& o) {
  int64_t yaml_seeds = 1;
  const YamlSource src = load_recipe(o.recipe, o.overrides);
  std::vector<SweepAxis> axes = sweep_section_axes(src, &yaml_seeds);
  for (const auto& g : o.grid) axes.push_back(parse_grid_argument(g));
  if (o.jobs < 1) throw ConfigError({fmt::format("--jobs {}: expected at least 1", o.jobs)});
  const RunConfig base = config_without_sweep(o.recipe, o.overrides);
  const std::vector<SweepRun> runs = expand_sweep(axes, o.seeds ? o.seeds : yaml_seeds, base.run.seed);
  std::vector<std::string> keys;
  for (const auto& [k, v] : runs[0].values) keys.push_back(k);

  const std::string dir = base.run_dir();
  RunLock lock(dir);  // one sweep at a time in this folder
  fs::create_directories(dir + "/configs");
  fs::create_directories(dir + "/logs");
  const std::string records_file = dir + "/sweep.jsonl";
  const std::map<std::string, json> before = read_records(records_file);
  const int64_t cores = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t threads = std::max<int64_t>(1, cores / o.jobs);
  say(fmt::format("sweep: {} runs of {} in {} ({} at a time, {} threads each)\n", runs.size(), o.recipe, dir,
                  o.jobs, threads));

  std::vector<Job> jobs;
  for (const SweepRun& r : runs) {
    Job j;
    j.run = r;
    j.record = {{"name", r.name}, {"overrides", r.overrides}};
    if (auto it = before.find(r.name); it != before.end() && it->second.value("status", "") == "finished") {
      j.record = it->second;
      j.record["skipped"] = true;  // done by an earlier invocation
      jobs.push_back(j);
      continue;
    }
    j.log_file = fmt::format("{}/logs/{}.log", dir, r.name);
    j.config_file = fmt::format("{}/configs/{}.yaml", dir, r.name);
    try {
      std::vector<std::string> sets = o.overrides;
      sets.insert(sets.end(), r.overrides.begin(), r.overrides.end());
      RunConfig cfg = config_without_sweep(o.recipe, sets);
      cfg.run.dir = dir, cfg.run.name = r.name;
      // dp = 0 means "every process of the job": alone, one process.
      j.processes = std::max<int64_t>(cfg.parallel.dp, 1) * cfg.parallel.cp;
      const int64_t share = std::max<int64_t>(1, threads / j.processes);  // the run's share, split over its ranks
      if (cfg.train.threads == 0 || cfg.train.threads > share) cfg.train.threads = share;
      cfg.validate();
      LanguageModel m = build_model(cfg, c10::kCPU);  // for the counts only
      j.record["parameters"] = m->num_parameters();
      j.record["flops_per_token"] = m->train_flops_per_token(cfg.data.seq_len);
      j.run_dir = cfg.run_dir(), j.steps = cfg.train.steps;
      // Written every time: a recipe changed since a run started makes its resume fail on the
      // config hash, with the reason in sweep.jsonl, instead of silently training the old one.
      write_file_atomic(j.config_file, cfg.to_yaml());
    } catch (const std::exception& e) {  // this point's config is bad; the others still run
      j.record["status"] = "failed";
      j.record["error"] = e.what();
    }
    jobs.push_back(j);
  }

  // Schedule: at most `jobs` children; a child's end is recorded as soon as it is reaped.
  auto write_records = [&] {
    std::string text;
    for (const Job& j : jobs)
      if (j.record.contains("status")) text += j.record.dump() + "\n";
    write_file_atomic(records_file, text);
  };
  size_t next = 0;
  std::vector<Job*> active;
  for (;;) {
    while (static_cast<int64_t>(active.size()) < o.jobs && next < jobs.size()) {
      Job& j = jobs[next++];
      if (j.record.contains("status")) continue;  // finished before, or failed to configure
      std::vector<std::string> args = {"train", j.config_file};
      if (j.processes > 1)  // the launcher picks a free port and ends every rank if one fails
        args.insert(args.begin(), {"launch", "--nproc-per-node", std::to_string(j.processes), "--"});
      const bool resume = fs::exists(j.run_dir) && has_checkpoints(j.run_dir);
      if (resume) args.push_back("--resume");
      if (!o.quiet)
        say(fmt::format("sweep: {} {}{}\n", resume ? "resuming" : "starting", j.run.name,
                        j.processes > 1 ? fmt::format(" ({} processes)", j.processes) : ""));
      j.started = clock::now();
      j.pid = start_child(o.binary, args, j.log_file);
      j.record["resumed"] = resume;
      j.record["processes"] = j.processes;
      active.push_back(&j);
    }
    if (active.empty()) break;
    int st = 0;
    const pid_t done = ::waitpid(-1, &st, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = std::find_if(active.begin(), active.end(), [&](Job* j) { return j->pid == done; });
    if (it == active.end()) continue;
    Job& j = **it;
    active.erase(it);
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    j.record["wall_s"] = std::chrono::duration<double>(clock::now() - j.started).count();
    j.record["exit_code"] = code;
    read_run_results(j.run_dir, j.steps, j.record);
    const bool finished = code == 0 && j.record["finished"].get<bool>();
    j.record["status"] = finished ? "finished" : code == 0 ? "interrupted" : "failed";
    if (!finished && code != 0) j.record["error"] = error_line(j.log_file);
    write_records();
    if (!o.quiet)
      say(fmt::format("sweep: {} {}{}\n", j.run.name, j.record["status"].get<std::string>(),
                      j.record.contains("final_val_loss")
                          ? fmt::format(" (val loss {:.4f})", j.record["final_val_loss"].get<double>())
                          : ""));
  }
  write_records();
  print_table(jobs, keys);
  for (const Job& j : jobs)
    if (j.record.value("status", "") != "finished") return 1;
  return 0;
}

}  // namespace attnlab::sweep
