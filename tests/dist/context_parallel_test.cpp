// The context-parallel contract for every registered mixer that declares a strategy, between
// real processes over Gloo: 2 and 4 ranks each hold one shard of an fp64 sequence; outputs,
// input gradients and parameter gradients equal the whole sequence on one process (cp_worker.cpp).
// Then the trainer on a dp 2 x cp 2 mesh of 4 processes against one process, with a hybrid of
// both kinds of strategy (the refusals are unit tests: tests/framework/mesh_test.cpp).
#include <gtest/gtest.h>

#include "tests/common/test_util.h"
#include "tests/dist/job.h"

namespace attnlab {
namespace {

void run_cp(int world) {
  std::vector<Child> kids =
      spawn_ranks(ATTNLAB_CP_WORKER, world, testing::temp_dir("cp"), {{"OMP_NUM_THREADS", "1"}});
  Reaper reaper{kids};
  const auto codes = wait_all(kids, std::chrono::seconds(120));
  for (int r = 0; r < world; ++r) {
    const std::string log = testing::read_file(kids[r].log);
    EXPECT_EQ(codes[r], 0) << "rank " << r << ":\n" << log;
    EXPECT_NE(log.find("under context parallelism: ok"), std::string::npos) << log;
  }
}

TEST(ContextParallel, EveryDeclaredStrategyIsExactOnTwoRanks) { run_cp(2); }
TEST(ContextParallel, EveryDeclaredStrategyIsExactOnFourRanks) { run_cp(4); }

TEST(ContextParallel, ADp2Cp2MeshTrainsLikeOneProcess) {
  Job j;
  const std::vector<std::string> common = {"train.steps=10", "train.dtype=fp64",
                                           "model.pattern=[{type: gla}, {type: softmax}]"};
  auto with = [&](const std::vector<std::string>& extra) { return joined(common, extra); };
  std::string log;
  ASSERT_EQ(j.run(0, "one", with({"train.batch_size=4"}), &log), 0) << log;
  ASSERT_EQ(j.run(4, "mesh", with({"train.batch_size=2", "parallel.cp=2", "parallel.cp_strategy=state_scan,allgather_kv"}), &log),
            0) << log;
  EXPECT_NE(log.find("data parallel: 4 ranks (dp 2, cp 2, zero 0)"), std::string::npos) << log;
  EXPECT_NE(log.find("layers: gla state_scan, softmax allgather_kv"), std::string::npos) << log;
  expect_same_curve(j.values("one", "train/loss"), j.values("mesh", "train/loss"), 1e-10, "dp 2 x cp 2 train/loss");
  expect_same_curve(j.values("one", "val/loss"), j.values("mesh", "val/loss"), 1e-10, "dp 2 x cp 2 val/loss");
}

TEST(ContextParallel, PackedDocumentsTrainLikeOneProcess) {
  // Every mixer family with documents crossing the shard edge of a 2-way split: the test
  // corpus's documents are 50-250 bytes, so every 128-token window holds boundaries and many
  // documents straddle the middle.
  Job j;
  const std::vector<std::string> common = {
      "train.steps=6", "train.dtype=fp64", "train.batch_size=2", "data.pack=documents", "data.seq_len=128",
      "model.layers=4",
      "model.pattern=[{type: hedgehog, window: 16}, {type: gla}, {type: lightning}, {type: softmax}]"};
  auto with = [&](const std::vector<std::string>& extra) { return joined(common, extra); };
  std::string log;
  ASSERT_EQ(j.run(0, "one", with({}), &log), 0) << log;
  ASSERT_EQ(j.run(2, "cp", with({"parallel.cp=2"}), &log), 0) << log;
  EXPECT_NE(log.find("layers: hedgehog state_gather, gla state_gather, lightning state_gather, softmax ulysses"),
            std::string::npos) << log;
  expect_same_curve(j.values("one", "train/loss"), j.values("cp", "train/loss"), 1e-10, "cp 2 packed train/loss");
  expect_same_curve(j.values("one", "val/loss"), j.values("cp", "val/loss"), 1e-10, "cp 2 packed val/loss");
}

}  // namespace
}  // namespace attnlab
