// attnlab bench collectives: time of each collective against its size on this job's
// communicator (docs/benchmarks.md, "Collectives"). Run under a launcher:
//   attnlab launch --nproc-per-node 2 -- bench collectives [--max-mb 64] [--reps 10]
// Rank 0 prints the median over --reps of every size, with the bus bandwidth (the bytes each
// rank must move for a ring algorithm: 2(P-1)/P x size for all-reduce, (P-1)/P for the others).
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "framework/dist/communicator.h"
#include "tools/attnlab/commands.h"

namespace attnlab::cli {
namespace {

template <class F> double median_seconds(Communicator& c, int64_t reps, F&& op) {
  std::vector<double> t;
  op();  // warm-up: connections, buffers
  for (int64_t i = 0; i < reps; ++i) {
    c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    op();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int run_collectives(double max_mb, int64_t reps, int64_t timeout_s) {
  const World w = world_from_env();
  CommOptions o;
  o.timeout = std::chrono::seconds(timeout_s);
  Communicator c(w, o);
  const double P = static_cast<double>(c.size());
  if (c.rank() == 0)
    fmt::print("bench collectives: {} ranks over {}, fp32, median of {}\n"
               "{:>10} | {:>22} | {:>22} | {:>22}\n",
               c.size(), c.size() > 1 ? c.backend() : "none", reps, "bytes", "all_reduce ms (bus GB/s)",
               "reduce_scatter ms (GB/s)", "all_gather ms (GB/s)");
  for (int64_t bytes = 4096; bytes <= static_cast<int64_t>(max_mb * (1 << 20)); bytes *= 4) {
    const int64_t n = std::max<int64_t>(c.size(), bytes / 4 / c.size() * c.size());
    at::Tensor full = at::ones({n}, at::kFloat), part = at::zeros({n / c.size()}, at::kFloat);
    const double ar = median_seconds(c, reps, [&] { c.all_reduce(full); });
    const double rs = median_seconds(c, reps, [&] { c.reduce_scatter_async(full, part).wait(); });
    const double ag = median_seconds(c, reps, [&] { c.all_gather_into(part, full); });
    const double b = static_cast<double>(n) * 4;
    auto cell = [](double s, double moved) { return fmt::format("{:8.3f} ({:6.2f})", 1e3 * s, moved / s / 1e9); };
    if (c.rank() == 0)
      fmt::print("{:>10} | {:>22} | {:>22} | {:>22}\n", n * 4, cell(ar, 2 * (P - 1) / P * b),
                 cell(rs, (P - 1) / P * b), cell(ag, (P - 1) / P * b));
  }
  return 0;
}

}  // namespace

void add_bench_collectives(CLI::App& bench, Action& action) {
  auto* cmd = bench.add_subcommand("collectives", "time all-reduce, reduce-scatter and all-gather against size");
  auto max_mb = std::make_shared<double>(64);
  auto reps = std::make_shared<int64_t>(10);
  auto timeout = std::make_shared<int64_t>(120);
  cmd->add_option("--max-mb", *max_mb, "largest tensor, MB (sizes go up by 4x from 4 KB)")->check(CLI::Range(0.004, 4096.0));
  cmd->add_option("--reps", *reps, "timed repetitions per size")->check(CLI::Range(1, 100000));
  cmd->add_option("--timeout-s", *timeout, "rendezvous and collective timeout")->check(CLI::Range(1, 86400));
  cmd->callback([=, &action] { action = [=] { return run_collectives(*max_mb, *reps, *timeout); }; });
}

}  // namespace attnlab::cli
