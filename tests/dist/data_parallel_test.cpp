// Data parallelism end to end through the real binary and `attnlab launch`: 2 ranks × batch B
// train the same model as 1 rank × batch 2B (DDP and ZeRO-1, with and without grad_accum), a
// SIGTERM to the launcher checkpoints every rank and --resume continues the same loss sequence,
// resume works across world sizes, and bad launch arguments are usage errors. Lost workers:
// faults_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "tests/common/test_util.h"
#include "tests/dist/job.h"

namespace attnlab {
namespace {

// 2 ranks x batch B against 1 rank x batch 2B, as DDP and as ZeRO-1, for softmax and gla, with
// and without grad_accum. An fp64 model makes the comparison tight: the sums only change order.
struct Equivalence {
  std::string mixer, dtype, accum;
  double tol;
};

TEST(DataParallel, TwoRanksOfBatchBTrainLikeOneRankOfBatch2BAsDdpAndZero1) {
  Job j;
  for (const Equivalence& e : {Equivalence{"softmax", "fp64", "1", 1e-10}, Equivalence{"softmax", "fp64", "2", 1e-10},
                               Equivalence{"gla", "fp64", "1", 1e-10}, Equivalence{"softmax", "fp32", "2", 1e-5}}) {
    const std::string tag = e.mixer + "-" + e.dtype + "-accum" + e.accum;
    const std::vector<std::string> common = {"train.steps=20", "train.grad_accum=" + e.accum, "train.dtype=" + e.dtype,
                                             "model.mixer.type=" + e.mixer};
    auto with = [&](const std::vector<std::string>& v, const std::vector<std::string>& extra) { return joined(v, extra); };
    std::string log;
    ASSERT_EQ(j.run(0, "one-" + tag, with(common, {"train.batch_size=4"}), &log), 0) << log;
    for (const std::string zero : {"0", "1"}) {
      const std::string name = "two-zero" + zero + "-" + tag;
      // 50 KB buckets, so gradients travel in several during backward (ordering, padding and
      // ZeRO-1 pieces across buckets all exercised).
      ASSERT_EQ(j.run(2, name, with(common, {"train.batch_size=2", "parallel.zero=" + zero, "parallel.bucket_mb=0.05"}),
                      &log), 0) << log;
      EXPECT_NE(log.find("data parallel: 2 ranks (dp 2, cp 1, zero " + zero + ") over gloo"), std::string::npos) << log;
      const size_t at = log.find("gradients in ");
      ASSERT_NE(at, std::string::npos) << log;
      EXPECT_GE(std::stoi(log.substr(at + 13)), 3) << log;
      expect_same_curve(j.values("one-" + tag, "train/loss"), j.values(name, "train/loss"), e.tol, name + " train/loss");
      expect_same_curve(j.values("one-" + tag, "val/loss"), j.values(name, "val/loss"), e.tol, name + " val/loss");
    }
  }
}

TEST(DataParallel, Zero1HoldsHalfTheOptimizerStateAndTakesDdpsGradientNorm) {
  // The default recipe's width (3.3M parameters in one bucket): one fp32 norm over a whole
  // bucket shard was 7e-5 off DDP's norm of per-parameter norms, more than rounding.
  Job j;
  const std::vector<std::string> sets = {"train.steps=2", "train.batch_size=2", "model.dim=256", "model.layers=4",
                                         "data.seq_len=64", "parallel.bucket_mb=1"};
  auto with = [&](std::string extra) { auto v = sets; v.push_back(extra); return v; };
  std::string ddp, zero;
  ASSERT_EQ(j.run(2, "ddp", with("parallel.zero=0"), &ddp), 0) << ddp;
  ASSERT_EQ(j.run(2, "zero", with("parallel.zero=1"), &zero), 0) << zero;
  auto megabytes = [](const std::string& log) {
    const size_t at = log.find("optimizer: AdamW state ");
    return at == std::string::npos ? -1.0 : std::stod(log.substr(at + 23));
  };
  ASSERT_GT(megabytes(ddp), 0) << ddp;
  // Each bucket is padded to a multiple of 2, so ZeRO-1 holds half, up to a few elements.
  EXPECT_NEAR(megabytes(zero), megabytes(ddp) / 2, 0.011) << zero;
  EXPECT_NE(zero.find("ZeRO-1: about 1/2 of the whole"), std::string::npos) << zero;
  expect_same_curve(j.values("ddp", "train/grad_norm"), j.values("zero", "train/grad_norm"), 2e-6, "grad norm");
}

TEST(DataParallel, SigtermToTheLauncherCheckpointsAndResumeContinuesTheSameCurve) {
  Job j;
  // Long enough that the signal lands mid-run (a few ms per step).
  const std::vector<std::string> sets = {"train.steps=300", "train.batch_size=4"};
  ASSERT_EQ(j.run(2, "straight", sets), 0);
  std::vector<std::string> argv = {ATTNLAB_BIN, "launch", "--nproc-per-node", "2", "--"};
  for (const auto& a : j.train_args("split", sets)) argv.push_back(a);
  std::vector<Child> kids = {spawn(argv, {}, j.dir + "/split.log")};
  wait_for(kids[0].log, "step   5/300", std::chrono::seconds(30));
  ::kill(kids[0].pid, SIGTERM);
  const int rc = wait_all(kids, std::chrono::seconds(120))[0];
  const std::string log = testing::read_file(kids[0].log);
  ASSERT_EQ(rc, 0) << log;
  ASSERT_NE(log.find("interrupted: saved a checkpoint"), std::string::npos) << log;
  std::vector<std::string> resume = sets;
  std::string log2;
  auto args = j.train_args("split", resume);
  args.push_back("--resume");
  std::vector<std::string> argv2 = {ATTNLAB_BIN, "launch", "--nproc-per-node", "2", "--"};
  argv2.insert(argv2.end(), args.begin(), args.end());
  std::vector<Child> again = {spawn(argv2, {}, j.dir + "/split2.log")};
  ASSERT_EQ(wait_all(again, std::chrono::seconds(240))[0], 0) << testing::read_file(again[0].log);
  // Resume is exact: the same numbers as the straight run (logs trimmed to one curve).
  expect_same_curve(j.values("straight", "train/loss"), j.values("split", "train/loss"), 0, "resumed curve");
}

TEST(DataParallel, ResumeAcrossWorldSizesContinuesTheSameCurve) {
  // Constant lr so that the 5-step first half has the schedule of the 10-step whole.
  Job j;
  const std::vector<std::string> base = {"optim.schedule=constant", "optim.warmup_steps=2"};
  auto with = [&](const std::vector<std::string>& extra) { return joined(base, extra); };
  std::string log;
  ASSERT_EQ(j.run(0, "whole", with({"train.steps=10", "train.batch_size=4"}), &log), 0) << log;
  // 2 ranks x 2 for five steps, then 1 rank x 4 resumes; the other way round; and ZeRO-1 on
  // either side (the checkpoint holds full moments, resharded on load).
  struct Leg { int first_nproc, first_batch, second_nproc, second_batch; std::string first_zero, second_zero; };
  for (const Leg& leg : {Leg{2, 2, 0, 4, "0", "0"}, Leg{0, 4, 2, 2, "0", "1"}, Leg{2, 2, 0, 4, "1", "0"}}) {
    const std::string name = fmt::format("w{}z{}to{}z{}", leg.first_nproc, leg.first_zero, leg.second_nproc, leg.second_zero);
    ASSERT_EQ(j.run(leg.first_nproc, name, with({"train.steps=5", "train.batch_size=" + std::to_string(leg.first_batch),
                                                 "parallel.zero=" + leg.first_zero}),
                    &log), 0) << log;
    auto second = with({"train.steps=10", "train.batch_size=" + std::to_string(leg.second_batch),
                        "parallel.zero=" + leg.second_zero});
    std::vector<std::string> argv = {ATTNLAB_BIN};
    if (leg.second_nproc > 0) argv.insert(argv.end(), {"launch", "--nproc-per-node", std::to_string(leg.second_nproc), "--"});
    for (const auto& a : j.train_args(name, second)) argv.push_back(a);
    argv.push_back("--resume");
    std::vector<Child> kids = {spawn(argv, {}, j.dir + "/" + name + "-resume.log")};
    ASSERT_EQ(wait_all(kids, std::chrono::seconds(240))[0], 0) << testing::read_file(kids[0].log);
    EXPECT_NE(testing::read_file(kids[0].log).find("continuing on"), std::string::npos);
    expect_same_curve(j.values("whole", "train/loss"), j.values(name, "train/loss"), 1e-5, name);
  }
}

TEST(Launch, BadArgumentsAreUsageErrors) {
  Job j;
  auto rc_of = [&](std::vector<std::string> args) {
    args.insert(args.begin(), ATTNLAB_BIN);
    std::vector<Child> kids = {spawn(args, {}, j.dir + "/bad.log")};
    return wait_all(kids, std::chrono::seconds(60))[0];
  };
  EXPECT_EQ(rc_of({"launch", "--nproc-per-node", "2", "--", "eval", "x"}), 2);
  EXPECT_EQ(rc_of({"launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "3", "--", "train", "r.yaml"}), 2);
  EXPECT_EQ(rc_of({"launch", "--nproc-per-node", "0", "--", "train", "r.yaml"}), 2);
  EXPECT_EQ(rc_of({"launch", "--nnodes", "2", "--", "train", "r.yaml"}), 2) << "multi-node needs --master-port";
}

}  // namespace
}  // namespace attnlab
