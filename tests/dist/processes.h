// Starting and reaping the processes of a multi-process test (ports: free_loopback_port): spawn with
// extra environment and output to a file, and a bounded wait that kills (by pid) whatever is
// still running at the deadline.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "framework/dist/world.h"

extern char** environ;

namespace attnlab {

struct Child {
  pid_t pid = -1;
  std::string log;
};

// Starts argv with the current environment plus `env`, output to `log`.
inline Child spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
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

// `world` copies of `binary` as ranks 0..world-1 of one job on loopback (torchrun's variables,
// a free port), output to dir/rank<r>.log.
inline std::vector<Child> spawn_ranks(const std::string& binary, int world, const std::string& dir,
                                      std::map<std::string, std::string> extra = {}) {
  const std::string port = std::to_string(free_loopback_port());
  std::vector<Child> kids;
  for (int r = 0; r < world; ++r) {
    std::map<std::string, std::string> env = extra;
    env.insert({{"RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(world)},
                {"LOCAL_RANK", std::to_string(r)}, {"LOCAL_WORLD_SIZE", std::to_string(world)},
                {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}});
    kids.push_back(spawn({binary}, env, dir + "/rank" + std::to_string(r) + ".log"));
  }
  return kids;
}

// Waits for all children up to `limit`; kills (by pid) whatever is still running then.
inline std::vector<int> wait_all(std::vector<Child>& kids, std::chrono::seconds limit) {
  std::vector<int> codes(kids.size(), -1);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  size_t done = 0;
  for (size_t i = 0; i < kids.size(); ++i)
    if (kids[i].pid <= 0) codes[i] = 127, ++done;  // never started (posix_spawn failed)
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

// Ends (SIGKILL, by pid) and reaps whatever of `kids` is still running when it goes out of scope,
// so a failed ASSERT leaves no process behind.
struct Reaper {
  std::vector<Child>& kids;
  ~Reaper() {
    for (auto& k : kids)
      if (k.pid > 0 && ::waitpid(k.pid, nullptr, WNOHANG) == 0) {
        ::kill(k.pid, SIGKILL);
        ::waitpid(k.pid, nullptr, 0);
      }
  }
};

}  // namespace attnlab
