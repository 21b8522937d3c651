// The communicator over real c10d Gloo between real processes on loopback: 2 and 3 ranks with
// our own rendezvous (rank 0 hosts the store), and 2 ranks under torchrun's agent store. Every
// run is bounded in time, uses a free port, and ends the processes it started by their pids.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/test_util.h"

extern char** environ;

namespace attnlab {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct Child {
  pid_t pid = -1;
  std::string log;
};

// Starts argv with the current environment plus `env`, output to `log`.
Child spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& log) {
  std::vector<std::string> vars;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (!env.count(kv.substr(0, kv.find('=')))) vars.push_back(kv);
  }
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  for (const auto& v : vars) cenv.push_back(const_cast<char*>(v.c_str()));
  cargv.push_back(nullptr), cenv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  Child c;
  c.log = log;
  if (posix_spawn(&c.pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data()) != 0) c.pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return c;
}

// Waits for all children up to `limit`; kills (by pid) whatever is still running then.
std::vector<int> wait_all(std::vector<Child>& kids, std::chrono::seconds limit) {
  std::vector<int> codes(kids.size(), -1);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  size_t done = 0;
  while (done < kids.size() && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < kids.size(); ++i) {
      int status;
      if (codes[i] == -1 && kids[i].pid > 0 && ::waitpid(kids[i].pid, &status, WNOHANG) == kids[i].pid) {
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        ++done;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (size_t i = 0; i < kids.size(); ++i)
    if (codes[i] == -1 && kids[i].pid > 0) {
      ::kill(kids[i].pid, SIGKILL);
      ::waitpid(kids[i].pid, nullptr, 0);
      codes[i] = 999;  // timed out
    }
  return codes;
}

void run_ranks(int world) {
  const std::string d = testing::temp_dir("comm");
  const std::string port = std::to_string(free_port());
  std::vector<Child> kids;
  for (int r = 0; r < world; ++r)
    kids.push_back(spawn({ATTNLAB_DIST_WORKER},
                         {{"RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(world)},
                          {"LOCAL_RANK", std::to_string(r)}, {"LOCAL_WORLD_SIZE", std::to_string(world)},
                          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}},
                         d + "/rank" + std::to_string(r) + ".log"));
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
                                    {"MASTER_PORT", std::to_string(free_port())}, {"DIST_TIMEOUT_S", "5"}},
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
