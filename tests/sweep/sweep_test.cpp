// Sweeps (tools/sweep; docs/ablations.md, "Sweeps"): axes from --grid and a recipe's sweep:
// section, their expansion and run names, the errors, and whole sweeps through the attnlab
// binary: a bad point recorded without stopping the others, finished runs skipped on a second
// invocation, an interrupted run resumed from its checkpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "framework/config/config_error.h"
#include "framework/util/atomic_file.h"
#include "tests/common/test_util.h"
#include "framework/config/run_config.h"
#include "framework/config/yaml_source.h"
#include "tools/sweep/sweep_plan.h"
#include "tools/sweep/sweep_run.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::config_error;

std::vector<sweep::SweepAxis> section(const std::string& yaml, int64_t* seeds) {
  return sweep::sweep_section_axes(load_yaml_text(yaml, "sweep.yaml"), seeds);
}

TEST(Sweep, GridValuesSplitOnlyAtTopLevelCommas) {
  EXPECT_EQ(sweep::split_top_level("softmax, {type: swa, window: 64},[1, 2],'a,b'"),
            (std::vector<std::string>{"softmax", "{type: swa, window: 64}", "[1, 2]", "'a,b'"}));
  const sweep::SweepAxis a = sweep::parse_grid_argument("model.mixer={type: gla},{type: swa, window: 8}");
  EXPECT_EQ(a.keys, std::vector<std::string>{"model.mixer"});
  ASSERT_EQ(a.points.size(), 2u);
  EXPECT_EQ(a.points[1][0], "{type: swa, window: 8}");
  EXPECT_NE(config_error([] { sweep::parse_grid_argument("model.dim"); }).find("--grid model.dim: expected key=v1,v2"),
            std::string::npos);
  EXPECT_NE(config_error([] { sweep::parse_grid_argument("model.dim=16,,32"); }).find("an empty value"),
            std::string::npos);
}

TEST(Sweep, ExpansionIsTheProductOfGridZipAndSeedsWithUniqueNames) {
  int64_t seeds = 0;
  auto axes = section(R"(sweep:
  grid: {data.seq_len: [64, 128]}
  zip:
    - {model.mixer: [{type: softmax}, {type: gla, expand_k: 1}], model.dim: [32, 48]}
  seeds: 2
)", &seeds);
  EXPECT_EQ(seeds, 2);
  const auto runs = sweep::expand_sweep(axes, seeds, 100);
  ASSERT_EQ(runs.size(), 2u * 2u * 2u);
  // The first axis varies slowest; zipped keys move together; the seed axis comes last.
  EXPECT_EQ(runs[0].overrides, (std::vector<std::string>{"data.seq_len=64", "model.mixer={type: softmax}",
                                                          "model.dim=32", "run.seed=100"}));
  EXPECT_EQ(runs[3].overrides, (std::vector<std::string>{"data.seq_len=64", "model.mixer={type: gla, expand_k: 1}",
                                                          "model.dim=48", "run.seed=101"}));
  EXPECT_EQ(runs[3].name, "seq_len-64__mixer-type_gla_expand_k_1__dim-48__seed-101");
  std::set<std::string> names;
  for (const auto& r : runs) names.insert(r.name);
  EXPECT_EQ(names.size(), runs.size());
  // Keys that share their last component are named in full.
  const auto both = sweep::expand_sweep({sweep::parse_grid_argument("model.dim=8"), sweep::parse_grid_argument("x.dim=9")}, 1, 0);
  EXPECT_EQ(both[0].name, "model.dim-8__x.dim-9");
  EXPECT_EQ(sweep::expand_sweep({}, 1, 0)[0].name, "base");
}

TEST(Sweep, MalformedSweepsAreRefusedNamingThePath) {
  int64_t seeds = 0;
  EXPECT_NE(config_error([&] { section("sweep: {zip: [{a: [1, 2], b: [3]}]}", &seeds); })
                .find("sweep.zip[0]: zipped lists must have the same length (a, b)"),
            std::string::npos);
  EXPECT_NE(config_error([&] { section("sweep: {grids: {a: [1]}}", &seeds); }).find("sweep.grids: unknown field"),
            std::string::npos);
  EXPECT_NE(config_error([&] { section("sweep: {grid: {a: 3}}", &seeds); }).find("sweep.grid.a: expected a non-empty list"),
            std::string::npos);
  EXPECT_NE(config_error([&] { section("sweep: {seeds: 0}", &seeds); }).find("sweep.seeds"), std::string::npos);
  EXPECT_NE(config_error([] {
              sweep::expand_sweep({sweep::parse_grid_argument("a=1"), sweep::parse_grid_argument("a=2")}, 1, 0);
            }).find("a is swept by two axes"),
            std::string::npos);
  EXPECT_NE(config_error([] { sweep::expand_sweep({sweep::parse_grid_argument("a='x y',x_y")}, 1, 0); })
                .find("both be named a-x_y"),
            std::string::npos);
}

std::map<std::string, json> records(const std::string& file) {
  std::map<std::string, json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) {
      json j = json::parse(line);
      out[j["name"].get<std::string>()] = j;
    }
  return out;
}

TEST(Sweep, EveryPointOfTheShippedSweepRecipesIsAValidConfig) {
  // recipes/mqar-sweep.yaml names every registered mixer with options: a renamed option or a
  // mixer that cannot take a width of the grid fails here, not 40 minutes into a sweep.
  int points = 0;
  for (const auto& e : fs::directory_iterator(ATTNLAB_SOURCE_DIR "/recipes")) {
    YamlSource src = load_recipe(e.path().string(), {});
    if (!src.root["sweep"]) continue;
    int64_t seeds = 1;
    const std::vector<sweep::SweepAxis> axes = sweep::sweep_section_axes(src, &seeds);
    for (const sweep::SweepRun& run : sweep::expand_sweep(axes, seeds, 1)) {
      YamlSource point = load_recipe(e.path().string(), run.overrides);
      point.root.remove("sweep");
      EXPECT_NO_THROW(parse_run_config(point)) << e.path() << " " << run.name;
      ++points;
    }
  }
  EXPECT_GE(points, 44);
}

/// A quiet sweep of the tiny recipe through the attnlab binary.
sweep::SweepOptions tiny_sweep(const testing::TinyRun& r) {
  sweep::SweepOptions o;
  o.recipe = r.recipe;
  o.binary = ATTNLAB_BINARY;
  o.quiet = true;
  return o;
}

TEST(Sweep, ASweepRecordsFailuresSkipsFinishedRunsAndResumesInterruptedOnes) {
  testing::TinyRun r;
  sweep::SweepOptions o = tiny_sweep(r);
  o.jobs = 2;
  o.overrides = {"train.steps=4", "checkpoint.every=2", "checkpoint.keep=3", "eval.every=2", "eval.batches=1",
                 "log.every=1"};
  o.grid = {"model.dim=16,32,30"};  // 30 is not a multiple of the 4 heads
  EXPECT_EQ(sweep::run_sweep(o), 1);  // one failed
  const std::string dir = r.run();
  auto rec = records(dir + "/sweep.jsonl");
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_EQ(rec["dim-30"]["status"], "failed");
  EXPECT_NE(rec["dim-30"]["error"].get<std::string>().find("divisible"), std::string::npos) << rec["dim-30"];
  for (const char* name : {"dim-16", "dim-32"}) {
    const json& j = rec[name];
    EXPECT_EQ(j["status"], "finished") << j;
    EXPECT_EQ(j["overrides"][0], std::string("model.dim=") + (std::string(name) == "dim-16" ? "16" : "32"));
    EXPECT_GT(j["parameters"].get<double>(), 0);
    EXPECT_GT(j["flops_per_token"].get<double>(), 0);
    EXPECT_LE(j["best_val_loss"].get<double>(), j["final_val_loss"].get<double>());
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
    EXPECT_TRUE(fs::exists(dir + "/" + name + "/checkpoints/step-4"));
  }
  EXPECT_LT(rec["dim-16"]["parameters"].get<double>(), rec["dim-32"]["parameters"].get<double>());

  // Interrupt dim-16 after the fact: its last checkpoint and its record gone, as if the sweep
  // had been killed between steps 2 and 4. The rerun resumes it and skips dim-32.
  remove_tree(dir + "/dim-16/checkpoints/step-4");
  {
    std::ofstream out(dir + "/sweep.jsonl");
    out << rec["dim-32"].dump() << "\n";
  }
  o.grid = {"model.dim=16,32"};
  EXPECT_EQ(sweep::run_sweep(o), 0);
  rec = records(dir + "/sweep.jsonl");
  EXPECT_EQ(rec["dim-16"]["status"], "finished") << rec["dim-16"];
  EXPECT_EQ(rec["dim-16"]["resumed"], true);
  EXPECT_EQ(rec["dim-32"]["skipped"], true);
  EXPECT_NE(testing::read_file(dir + "/logs/dim-16.log").find("resum"), std::string::npos);
}

TEST(Sweep, APointThatAsksForProcessesTrainsThroughLaunch) {
  // parallel.dp 2 cannot train in one process: the sweep starts it as `attnlab launch
  // --nproc-per-node 2 -- train ...` (every rank's output in its log) and the 1-process point
  // next to it stays a plain `attnlab train`.
  testing::TinyRun r;
  sweep::SweepOptions o = tiny_sweep(r);
  o.overrides = {"train.steps=2", "eval.every=2", "eval.batches=1", "log.every=1", "parallel.timeout_s=60"};
  o.grid = {"parallel.dp=1,2"};
  ASSERT_EQ(sweep::run_sweep(o), 0);
  const std::string dir = r.run();
  auto rec = records(dir + "/sweep.jsonl");
  ASSERT_EQ(rec["dp-2"]["status"], "finished") << rec["dp-2"];
  EXPECT_EQ(rec["dp-2"]["processes"], 2);
  EXPECT_EQ(rec["dp-1"]["processes"], 1);
  // Rank 0 names the world it trained in (the other ranks are quiet unless they fail).
  EXPECT_NE(testing::read_file(dir + "/logs/dp-2.log").find("data parallel: 2 ranks"), std::string::npos);
  EXPECT_EQ(testing::read_file(dir + "/logs/dp-1.log").find("data parallel"), std::string::npos);
  // Only a data-parallel run logs its slowest rank and all-reduce share.
  EXPECT_NE(testing::read_file(dir + "/dp-2/metrics.jsonl").find("perf/allreduce_fraction"), std::string::npos);
  EXPECT_EQ(testing::read_file(dir + "/dp-1/metrics.jsonl").find("perf/allreduce_fraction"), std::string::npos);
}

}  // namespace
}  // namespace attnlab
