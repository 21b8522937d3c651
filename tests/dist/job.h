// A small training job for the multi-process tests: a corpus in a temp folder, the default
// recipe shrunk to a few milliseconds per step, runs through `attnlab [launch ...] train`, and
// their metrics read back.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/common/test_util.h"
#include "tests/dist/processes.h"

namespace attnlab {

struct Job {
  std::string dir;
  Job() : dir(testing::temp_dir("ddp")) { testing::write_corpus(dir, 300); }
  std::vector<std::string> train_args(const std::string& name, const std::vector<std::string>& sets) const {
    std::vector<std::string> a = {"train", ATTNLAB_SOURCE_DIR "/recipes/default.yaml"};
    for (const std::string& s :
         {"run.dir=" + dir + "/runs", "run.name=" + name, "data.dir=" + dir + "/data",
          "data.prepare_from=" + dir + "/corpus.txt", std::string("model.dim=32"), std::string("model.layers=2"),
          std::string("data.seq_len=32"), std::string("eval.every=0"), std::string("eval.batches=2"),
          std::string("checkpoint.every=0"), std::string("log.every=1"), std::string("train.threads=1"),
          std::string("parallel.timeout_s=20")})
      a.push_back("--set"), a.push_back(s);
    for (const auto& s : sets) a.push_back("--set"), a.push_back(s);
    return a;
  }
  // Runs `attnlab [launch --nproc-per-node N --] train ...`; returns the exit code.
  int run(int nproc, const std::string& name, const std::vector<std::string>& sets, std::string* log = nullptr) const {
    std::vector<std::string> argv = {ATTNLAB_BIN};
    if (nproc > 0) argv.insert(argv.end(), {"launch", "--nproc-per-node", std::to_string(nproc), "--"});
    for (const auto& a : train_args(name, sets)) argv.push_back(a);
    std::vector<Child> kids = {spawn(argv, {}, dir + "/" + name + ".log")};
    const int rc = wait_all(kids, std::chrono::seconds(240))[0];
    if (log) *log = testing::read_file(kids[0].log);
    return rc;
  }
  std::vector<double> values(const std::string& name, const std::string& key) const {
    std::vector<double> out;
    std::istringstream in(testing::read_file(dir + "/runs/" + name + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains(key)) out.push_back(j[key].get<double>());
    }
    return out;
  }
};

// Waits (bounded) until `log` shows `text`.
/// `base` followed by `extra` (a test's common --set overrides plus one run's own).
inline std::vector<std::string> joined(std::vector<std::string> base, const std::vector<std::string>& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

inline bool wait_for(const std::string& log, const std::string& text, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (testing::read_file(log).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

inline void expect_same_curve(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_FALSE(a.empty()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LE(std::abs(a[i] - b[i]), tol * std::abs(a[i])) << what << " at entry " << i << ": " << a[i] << " vs " << b[i];
}


}  // namespace attnlab
