// The communicator over real c10d Gloo between real processes on loopback: 2 and 3 ranks with
// our own rendezvous (rank 0 hosts the store), and 2 ranks under torchrun's agent store. Every
// run is bounded in time, uses a free port, and ends the processes it started by their pids.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/common/test_util.h"
#include "tests/dist/processes.h"

namespace attnlab {
namespace {

void run_ranks(int world) {
  std::vector<Child> kids = spawn_ranks(ATTNLAB_DIST_WORKER, world, testing::temp_dir("comm"));
  Reaper reaper{kids};
  const auto codes = wait_all(kids, std::chrono::seconds(90));
  for (int r = 0; r < world; ++r)
    EXPECT_EQ(codes[r], 0) << "rank " << r << ":\n" << testing::read_file(kids[r].log);
}

TEST(Communicator, GlooCollectivesBetweenTwoProcesses) { run_ranks(2); }
TEST(Communicator, GlooCollectivesBetweenThreeProcesses) { run_ranks(3); }

TEST(Communicator, UnderTorchrunEveryRankIsAClientOfTheAgentStore) {
  const std::string torchrun = ATTNLAB_TORCHRUN;
  if (!std::filesystem::exists(torchrun)) GTEST_SKIP() << "no torchrun at " << torchrun;
  const std::string d = testing::temp_dir("torchrun");
  std::vector<Child> kids = {spawn({torchrun, "--standalone", "--nproc-per-node", "2", "--no-python",
                                    ATTNLAB_DIST_WORKER},
                                   {{"OMP_NUM_THREADS", "1"}}, d + "/torchrun.log")};
  const auto codes = wait_all(kids, std::chrono::seconds(120));
  const std::string log = testing::read_file(kids[0].log);
  EXPECT_EQ(codes[0], 0) << log;
  EXPECT_NE(log.find("rank 0 of 2 (torchrun): ok"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 of 2 (torchrun): ok"), std::string::npos) << log;
}

TEST(Communicator, AnUnreachableMasterIsAClearErrorWithinTheTimeout) {
  const std::string d = testing::temp_dir("comm");
  // Rank 1 alone: nobody hosts the store at this free port.
  std::vector<Child> kids = {spawn({ATTNLAB_DIST_WORKER},
                                   {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"},
                                    {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                    {"MASTER_PORT", std::to_string(free_loopback_port())}, {"DIST_TIMEOUT_S", "5"}},
                                   d + "/rank1.log")};
  const auto codes = wait_all(kids, std::chrono::seconds(90));
  const std::string log = testing::read_file(kids[0].log);
  EXPECT_NE(codes[0], 0) << log;
  EXPECT_NE(codes[0], 999) << "did not give up within its timeout";
  EXPECT_NE(log.find("cannot reach the store at 127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("within 5 s"), std::string::npos) << log;
}

}  // namespace
}  // namespace attnlab
