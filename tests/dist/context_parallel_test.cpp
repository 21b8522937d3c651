// The context-parallel contract for every registered mixer that declares a strategy, between
// real processes over Gloo: 2 and 4 ranks each hold one shard of an fp64 sequence; outputs,
// input gradients and parameter gradients equal the whole sequence on one process (cp_worker.cpp).
#include <gtest/gtest.h>

#include "tests/common/test_util.h"
#include "tests/dist/processes.h"

namespace attnlab {
namespace {

void run_cp(int world) {
  const std::string d = testing::temp_dir("cp");
  const std::string port = std::to_string(free_loopback_port());
  std::vector<Child> kids;
  Reaper reaper{kids};
  for (int r = 0; r < world; ++r)
    kids.push_back(spawn({ATTNLAB_CP_WORKER},
                         {{"RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(world)},
                          {"LOCAL_RANK", std::to_string(r)}, {"LOCAL_WORLD_SIZE", std::to_string(world)},
                          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}, {"OMP_NUM_THREADS", "1"}},
                         d + "/rank" + std::to_string(r) + ".log"));
  const auto codes = wait_all(kids, std::chrono::seconds(120));
  for (int r = 0; r < world; ++r) {
    const std::string log = testing::read_file(kids[r].log);
    EXPECT_EQ(codes[r], 0) << "rank " << r << ":\n" << log;
    EXPECT_NE(log.find("mixers under context parallelism: ok"), std::string::npos) << log;
  }
}

TEST(ContextParallel, EveryDeclaredStrategyIsExactOnTwoRanks) { run_cp(2); }
TEST(ContextParallel, EveryDeclaredStrategyIsExactOnFourRanks) { run_cp(4); }

}  // namespace
}  // namespace attnlab
