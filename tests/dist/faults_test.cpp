// Lost workers and disagreeing ranks, through the real binary: a worker killed with SIGKILL
// mid-run takes the job down within parallel.timeout_s + 30 s with its rank named, and --resume
// continues from the newest complete checkpoint with nothing lost; with --max-restarts the
// launcher does that resume itself; a fault inside a save is named; ranks built from different
// configs are refused naming both hashes. Processes are found and ended by pid.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/common/test_util.h"
#include "tests/dist/job.h"

namespace attnlab {
namespace {

// The pid of the launcher's worker whose environment says RANK=<rank>; -1 if none (yet).
pid_t worker_with_rank(pid_t launcher, int rank) {
  DIR* proc = ::opendir("/proc");
  if (!proc) return -1;
  pid_t found = -1;
  while (dirent* e = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != launcher) continue;
    std::ifstream env(fmt::format("/proc/{}/environ", pid));
    for (std::string var; std::getline(env, var, '\0');)
      if (var == "RANK=" + std::to_string(rank)) found = pid;
  }
  ::closedir(proc);
  return found;
}

std::vector<std::string> launch_argv(const Job& j, const std::string& name, const std::vector<std::string>& sets,
                                     const std::vector<std::string>& launch_opts = {}) {
  std::vector<std::string> argv = {ATTNLAB_BIN, "launch", "--nproc-per-node", "2"};
  argv.insert(argv.end(), launch_opts.begin(), launch_opts.end());
  argv.push_back("--");
  for (const auto& a : j.train_args(name, sets)) argv.push_back(a);
  return argv;
}

// Long enough that the kill at step 50 lands mid-run even on a loaded machine (550 steps, a few
// seconds, to go), checkpoints every 20 steps.
const std::vector<std::string> kLongRun = {"train.steps=600", "train.batch_size=4", "checkpoint.every=20",
                                           "checkpoint.keep=3", "parallel.timeout_s=20", "log.every=10"};

TEST(Faults, KillDashNineOfOneWorkerStopsTheJobNamingItAndResumeLosesNothing) {
  Job j;
  ASSERT_EQ(j.run(2, "straight", kLongRun), 0);
  std::vector<Child> kids = {spawn(launch_argv(j, "killed", kLongRun), {}, j.dir + "/killed.log")};
  Reaper reaper{kids};
  ASSERT_TRUE(wait_for(kids[0].log, "step  50/600", std::chrono::seconds(120))) << testing::read_file(kids[0].log);
  const pid_t victim = worker_with_rank(kids[0].pid, 1);
  ASSERT_GT(victim, 0);
  ::kill(victim, SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  // parallel.timeout_s (20) + 30 s is the bound; wait_all kills at 60 s and reports 999.
  const int rc = wait_all(kids, std::chrono::seconds(60))[0];
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string log = testing::read_file(kids[0].log);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, 999) << "the job outlived its bound: " << log;
  EXPECT_LE(took, 20 + 30) << log;
  EXPECT_NE(log.find("launch: rank 1 exited with status 137 (killed)"), std::string::npos) << log;
  // The survivor stops at its next collective with an error that says what that means.
  EXPECT_NE(log.find("error: rank 0: "), std::string::npos) << log;
  EXPECT_NE(log.find(" over gloo failed: another rank has died"), std::string::npos) << log;
  // --resume (same world size) continues from the newest complete checkpoint, exactly.
  auto argv = launch_argv(j, "killed", kLongRun);
  argv.push_back("--resume");
  std::vector<Child> again = {spawn(argv, {}, j.dir + "/killed-resume.log")};
  ASSERT_EQ(wait_all(again, std::chrono::seconds(180))[0], 0) << testing::read_file(again[0].log);
  EXPECT_NE(testing::read_file(again[0].log).find("resume: "), std::string::npos);
  expect_same_curve(j.values("straight", "train/loss"), j.values("killed", "train/loss"), 0, "resumed after kill -9");
}

TEST(Faults, MaxRestartsStartsEveryWorkerAgainFromTheNewestCheckpoint) {
  Job j;
  ASSERT_EQ(j.run(2, "straight", kLongRun), 0);
  std::vector<Child> kids = {spawn(launch_argv(j, "restarted", kLongRun, {"--max-restarts", "1"}), {},
                                   j.dir + "/restarted.log")};
  Reaper reaper{kids};
  ASSERT_TRUE(wait_for(kids[0].log, "step  50/600", std::chrono::seconds(120))) << testing::read_file(kids[0].log);
  const pid_t victim = worker_with_rank(kids[0].pid, 1);
  ASSERT_GT(victim, 0);
  ::kill(victim, SIGKILL);
  const int rc = wait_all(kids, std::chrono::seconds(180))[0];
  const std::string log = testing::read_file(kids[0].log);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("launch: restart 1 of 1"), std::string::npos) << log;
  EXPECT_NE(log.find("resume: "), std::string::npos) << log;
  expect_same_curve(j.values("straight", "train/loss"), j.values("restarted", "train/loss"), 0, "after a restart");
}

TEST(Faults, AWorkerThatDiesStopsTheJobAndIsNamed) {
  Job j;
  // Rank 0 dies at its first checkpoint (the fault point ends it like kill -9); rank 1 waits in
  // the barrier after the save until the launcher stops it.
  std::vector<std::string> argv = {ATTNLAB_BIN, "launch", "--nproc-per-node", "2", "--"};
  for (const auto& a : j.train_args("dies", {"train.steps=4", "train.batch_size=2"})) argv.push_back(a);
  std::vector<Child> kids = {spawn(argv, {{"ATTNLAB_FAULT_AT", "save:begin"}}, j.dir + "/dies.log")};
  const int rc = wait_all(kids, std::chrono::seconds(120))[0];
  const std::string log = testing::read_file(kids[0].log);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, 999) << "the launcher did not exit: " << log;
  EXPECT_NE(log.find("launch: rank 0 exited with status 86"), std::string::npos) << log;
}

TEST(Faults, RanksWithDifferentConfigsAreRefusedNamingBothHashes) {
  Job j;
  const std::string port = std::to_string(free_loopback_port());
  std::vector<Child> kids;
  for (int r = 0; r < 2; ++r) {
    std::vector<std::string> argv = {ATTNLAB_BIN};
    for (const auto& a : j.train_args("mismatch", {"train.steps=2", r == 1 ? "optim.lr=0.5" : "optim.lr=0.003"}))
      argv.push_back(a);
    kids.push_back(spawn(argv,
                         {{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", std::to_string(r)},
                          {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}},
                         j.dir + "/mismatch" + std::to_string(r) + ".log"));
  }
  const auto codes = wait_all(kids, std::chrono::seconds(120));
  const std::string log1 = testing::read_file(kids[1].log);
  EXPECT_EQ(codes[1], 2) << log1;
  EXPECT_NE(log1.find("rank 1 built config "), std::string::npos) << log1;
  EXPECT_NE(log1.find(" but rank 0 built "), std::string::npos) << log1;
  EXPECT_NE(codes[0], 0) << "rank 0 went on alone: " << testing::read_file(kids[0].log);
  EXPECT_NE(codes[0], 999) << "rank 0 did not give up within parallel.timeout_s";
}

TEST(Faults, AMasterPortInUseIsAClearError) {
  Job j;
  // Hold a listening socket on a free port for the length of the test.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string port = std::to_string(ntohs(a.sin_port));
  std::vector<Child> kids = {spawn(launch_argv(j, "busy", {"train.steps=2", "parallel.timeout_s=5"},
                                               {"--master-port", port}),
                                   {}, j.dir + "/busy.log")};
  const int rc = wait_all(kids, std::chrono::seconds(60))[0];
  ::close(fd);
  const std::string log = testing::read_file(kids[0].log);
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("rank 0: cannot host the store at 127.0.0.1:" + port), std::string::npos) << log;
}

}  // namespace
}  // namespace attnlab
