// attnlab launch: start the workers of one node with torchrun's environment (docs/parallelism.md,
// "attnlab launch"), prefix their output with the rank, forward SIGINT/SIGTERM, and when a worker
// fails end the others and exit non-zero naming it, or with --max-restarts start them all again
// resuming from the newest checkpoint.
//   attnlab launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
//                  [--max-restarts K] -- train RECIPE [--set ...]
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "framework/config/config_error.h"
#include "framework/dist/world.h"
#include "framework/log/console.h"
#include "framework/util/child_process.h"
#include "tools/attnlab/commands.h"

namespace attnlab::cli {
namespace {

std::atomic<int> forwarded_signal{0};

struct Worker {
  pid_t pid = -1;
  int out = -1;  ///< read end of the worker's stdout+stderr
  int64_t rank = 0;
  std::string pending;  ///< a partial line
  int status = -1;      ///< exit code once reaped
};

// Forwards complete lines of `w`'s output, prefixed with its rank (rank 0 unprefixed).
void pump(Worker& w, bool flush_partial) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(w.out, buf, sizeof(buf));
    if (n <= 0) break;
    w.pending.append(buf, static_cast<size_t>(n));
  }
  size_t start = 0;
  for (size_t nl; (nl = w.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = w.pending.substr(start, nl - start + 1);
    console_write(stdout, w.rank == 0 ? line : fmt::format("[rank {}] {}", w.rank, line));
  }
  w.pending.erase(0, start);
  if (flush_partial && !w.pending.empty()) {
    console_write(stdout, (w.rank == 0 ? "" : fmt::format("[rank {}] ", w.rank)) + w.pending + "\n");
    w.pending.clear();
  }
}

Worker start_worker(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
                    int64_t rank) {
  int fds[2];  // close-on-exec: no worker inherits another's pipe
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("launch: pipe failed");
  Worker w;
  w.rank = rank;
  // A worker must not outlive its launcher (killed, crashed): it gets SIGTERM, saves, exits.
  w.pid = spawn_child("/proc/self/exe", args, env, fds[1], "launch");
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  w.out = fds[0];
  return w;
}

struct Attempt {
  int failed_rank = -1, failed_status = 0;
  bool interrupted = false;  ///< SIGINT/SIGTERM reached the launcher
};

struct LaunchPlan {
  int64_t nproc = 1, nnodes = 1, node_rank = 0, port = 0, max_restarts = 0;
  std::string addr;
};

// One generation of workers, run until all have exited.
Attempt run_attempt(const LaunchPlan& plan, int64_t port, int64_t restart, const std::vector<std::string>& args) {
  const int64_t world = plan.nproc * plan.nnodes;
  const auto cores = static_cast<int64_t>(std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max<int64_t>(1, cores / plan.nproc));
  std::vector<Worker> workers;
  for (int64_t local = 0; local < plan.nproc; ++local) {
    const int64_t rank = plan.node_rank * plan.nproc + local;
    std::vector<std::pair<std::string, std::string>> env = {
        {"RANK", std::to_string(rank)},          {"WORLD_SIZE", std::to_string(world)},
        {"LOCAL_RANK", std::to_string(local)},   {"LOCAL_WORLD_SIZE", std::to_string(plan.nproc)},
        {"GROUP_RANK", std::to_string(plan.node_rank)}, {"GROUP_WORLD_SIZE", std::to_string(plan.nnodes)},
        {"MASTER_ADDR", plan.addr},              {"MASTER_PORT", std::to_string(port)},
        {"TORCHELASTIC_RESTART_COUNT", std::to_string(restart)},
        {"TORCHELASTIC_MAX_RESTARTS", std::to_string(plan.max_restarts)},
        {"TORCHELASTIC_USE_AGENT_STORE", "False"},   {"ATTNLAB_LAUNCHER", "attnlab-launch"}};
    if (!std::getenv("OMP_NUM_THREADS")) env.emplace_back("OMP_NUM_THREADS", threads);
    workers.push_back(start_worker(args, env, rank));
  }
  // Signals go to every worker (they checkpoint and exit 0); a failed worker ends the others.
  Attempt a;
  std::chrono::steady_clock::time_point kill_at;  // set at the first failure
  size_t alive = workers.size();
  while (alive > 0) {
    // Exited workers' pipes are at end-of-file and would make poll return at once: skip them.
    std::vector<pollfd> fds;
    for (auto& w : workers) fds.push_back({w.status < 0 ? w.out : -1, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);
    for (auto& w : workers) pump(w, false);
    if (const int sig = forwarded_signal.exchange(0)) {
      // The first signal asks the workers to checkpoint and stop; a second one (a worker stuck
      // in a collective would wait out parallel.timeout_s) ends them now.
      const int send = a.interrupted ? SIGKILL : sig;
      a.interrupted = true;
      for (auto& w : workers)
        if (w.status < 0) ::kill(w.pid, send);
    }
    for (auto& w : workers) {
      int st;
      if (w.status >= 0 || ::waitpid(w.pid, &st, WNOHANG) != w.pid) continue;
      w.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      --alive;
      pump(w, true);
      if (a.failed_rank >= 0)  // the others' ends, for the post-mortem
        console_write(stderr, fmt::format("launch: rank {} then exited with status {}\n", w.rank, w.status));
      if (w.status != 0 && a.failed_rank < 0) {
        a.failed_rank = static_cast<int>(w.rank), a.failed_status = w.status;
        console_write(stderr, fmt::format("launch: rank {} exited with status {}{}; stopping the other workers\n",
                                          w.rank, w.status, w.status == 137 ? " (killed)" : ""));
        for (auto& o : workers)
          if (o.status < 0) ::kill(o.pid, SIGTERM);  // they stop and exit; SIGKILL below if not
        kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      }
    }
    if (a.failed_rank >= 0 && alive > 0 && std::chrono::steady_clock::now() > kill_at)
      for (auto& o : workers)
        if (o.status < 0) ::kill(o.pid, SIGKILL);
  }
  for (auto& w : workers) ::close(w.out);
  return a;
}

int run_launch(LaunchPlan plan, std::vector<std::string> args) {
  const bool bench = args.size() > 1 && args[0] == "bench" && (args[1] == "collectives" || args[1] == "context");
  if (args.empty() || (args[0] != "train" && !bench))
    throw ConfigError({"launch: expected `-- train RECIPE [...]` (or `-- bench collectives|context`) after the "
                       "launch options"});
  if (plan.node_rank >= plan.nnodes)
    throw ConfigError({fmt::format("launch: --node-rank {} is not below --nnodes {}", plan.node_rank, plan.nnodes)});
  if (plan.nnodes > 1 && plan.port == 0) throw ConfigError({"launch: --master-port is required with --nnodes > 1"});
  auto forward = [](int sig) { forwarded_signal = sig; };
  std::signal(SIGINT, forward);
  std::signal(SIGTERM, forward);
  for (int64_t restart = 0;; ++restart) {
    // One node alone takes a fresh free port per attempt (the dead store's may linger).
    const int64_t port = plan.port != 0 ? plan.port : free_loopback_port();
    const Attempt a = run_attempt(plan, port, restart, args);
    if (a.failed_rank < 0) return 0;
    // A usage error (exit 2) fails the same way every time; an interrupted job stays stopped
    // (also when the signal came after the workers had ended).
    if (a.interrupted || forwarded_signal.load() != 0 || a.failed_status == 2 || restart >= plan.max_restarts) {
      console_write(stderr, fmt::format("launch: rank {} exited with status {}; the other workers were stopped{}\n",
                                        a.failed_rank, a.failed_status,
                                        plan.max_restarts > 0 ? fmt::format(" ({} of {} restarts used)", restart,
                                                                            plan.max_restarts)
                                                              : ""));
      return 1;
    }
    if (args[0] == "train" && std::find(args.begin(), args.end(), "--resume") == args.end())
      args.push_back("--resume");
    console_write(stderr, fmt::format("launch: restart {} of {}: starting every worker again with --resume\n",
                                      restart + 1, plan.max_restarts));
  }
}

}  // namespace

void add_launch(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("launch", "start the workers of one node (torchrun's environment)");
  struct Args {
    LaunchPlan plan;
    std::vector<std::string> rest;
  };
  auto a = std::make_shared<Args>();
  a->plan.addr = "127.0.0.1";
  cmd->add_option("--nproc-per-node", a->plan.nproc, "workers on this node")->check(CLI::Range(1, 1024));
  cmd->add_option("--nnodes", a->plan.nnodes, "nodes in the job")->check(CLI::Range(1, 65536));
  cmd->add_option("--node-rank", a->plan.node_rank, "this node's index")->check(CLI::NonNegativeNumber);
  cmd->add_option("--master-addr", a->plan.addr, "address of node 0 (hosts the store)");
  cmd->add_option("--master-port", a->plan.port, "port of the store (default: a free one, single node only)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-restarts", a->plan.max_restarts,
                  "after a worker fails, start every worker again with --resume, up to K times")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("command", a->rest, "-- train RECIPE [...]")->required();
  cmd->callback([a, &action] {
    action = [a] { return run_launch(a->plan, a->rest); };
  });
}

}  // namespace attnlab::cli
