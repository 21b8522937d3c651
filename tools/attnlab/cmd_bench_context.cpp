// attnlab bench context: one mixer layer on one long sequence split across the job's ranks
// (docs/benchmarks.md, "Context parallelism"). Run alone for cp = 1, under a launcher for more:
//   attnlab launch --nproc-per-node 2 -- bench context --mixer gla --seq 16384
// Every rank builds the same layer and times forward + backward of its shard (median of --reps,
// each started after a barrier); rank 0 prints the slowest rank's time, tokens/s for the whole
// sequence and the bytes this rank handed to collectives per step, so runs at several cp can
// be set side by side (tools/bench/context_parallel.sh).
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "framework/config/config_error.h"
#include "framework/config/run_config.h"
#include "framework/dist/communicator.h"
#include "framework/model/documents.h"
#include "tools/attnlab/commands.h"

namespace attnlab::cli {
namespace {

struct ContextArgs {
  std::string mixer = "gla", options = "{}", strategy = "auto";
  int64_t seq = 16384, batch = 1, dim = 256, reps = 3, timeout_s = 600;
  int64_t doc_len = 0;  ///< > 0: packed documents of this many tokens (ids and in-document positions)
};

int run_context(const ContextArgs& a) {
  const World w = world_from_env();
  CommOptions co;
  co.timeout = std::chrono::seconds(a.timeout_s);
  Communicator world(w, co);
  const int64_t P = world.size(), r = world.rank();
  if (a.seq % P != 0) {
    fmt::print(stderr, "bench context: --seq {} must be a multiple of the {} ranks\n", a.seq, P);
    return 2;
  }
  std::unique_ptr<Communicator> group;
  if (P > 1) {
    std::vector<int64_t> ranks(P);
    for (int64_t i = 0; i < P; ++i) ranks[i] = i;
    group = world.subgroup(ranks, "cp");
  }
  at::manual_seed(1);  // the same layer on every rank
  const MixerSpec spec = mixer_spec(a.mixer, a.options);
  auto m = MixerRegistry::instance().find(a.mixer)->create(*spec.options, MixerShape{a.dim, 0, 1, a.seq});
  const int64_t S = a.seq / P;
  MixerContext ctx;
  ctx.training = true;
  if (group) {
    ctx.cp = group.get();
    std::vector<CpStrategy> preference;
    if (a.strategy != "auto") {
      const auto s = cp_strategy_named(a.strategy);
      if (!s) {
        fmt::print(stderr, "bench context: unknown --strategy '{}'\n", a.strategy);
        return 2;
      }
      preference.push_back(*s);
    }
    ctx.cp_strategy = choose_cp_strategy(*m, preference, P);
    if (ctx.cp_strategy == CpStrategy::none) {
      fmt::print(stderr, "bench context: mixer '{}' has no context-parallel strategy\n", a.mixer);
      return 2;
    }
  }
  if (a.doc_len > 0) {  // the whole sequence's documents, then this rank's shard of them
    const at::Tensor ids = (at::arange(a.seq, at::kLong) / a.doc_len).unsqueeze(0).repeat({a.batch, 1});
    ctx.documents = ids.narrow(1, r * S, S).contiguous();
    ctx.positions = positions_in_documents(ids).narrow(1, r * S, S).contiguous();
  }
  at::manual_seed(2 + r);
  at::Tensor x = at::randn({a.batch, S, a.dim}).requires_grad_(true);
  auto step = [&] {
    m->zero_grad();
    m->forward(x, ctx).sum().backward();
  };
  step();  // warm-up: allocations, connections
  std::vector<double> times;
  const auto bytes_before = group ? group->stats().bytes : std::map<std::string, int64_t>{};
  for (int64_t i = 0; i < a.reps; ++i) {
    world.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  at::Tensor slowest = at::tensor({times[times.size() / 2]}, at::kDouble);
  world.all_reduce(slowest, ReduceOp::max);
  int64_t bytes = 0;
  if (group)
    for (const auto& [op, n] : group->stats().bytes) bytes += n - (bytes_before.count(op) ? bytes_before.at(op) : 0);
  if (r == 0) {
    const double s = slowest.item<double>();
    fmt::print("bench context: {} {} | cp {} ({}) | B {} T {} D {} | {} threads/rank | fwd+bwd {:.1f} ms | "
               "{:.0f} tok/s | {:.2f} MB to collectives per step on rank 0\n",
               a.mixer, a.options, P, group ? to_string(ctx.cp_strategy) : "none", a.batch, a.seq, a.dim,
               at::get_num_threads(), 1e3 * s, static_cast<double>(a.batch * a.seq) / s,
               static_cast<double>(bytes) / static_cast<double>(a.reps) / 1e6);
  }
  return 0;
}

}  // namespace

void add_bench_context(CLI::App& bench, Action& action) {
  auto* cmd = bench.add_subcommand("context", "time one mixer layer on a sequence split across the job's ranks");
  auto a = std::make_shared<ContextArgs>();
  cmd->add_option("--mixer", a->mixer, "registered mixer type");
  cmd->add_option("--options", a->options, "the mixer's options as a YAML mapping, e.g. '{window: 64}'");
  cmd->add_option("--strategy", a->strategy, "context-parallel strategy (auto: the mixer's default)");
  cmd->add_option("--seq", a->seq, "sequence length (a multiple of the ranks)")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--batch", a->batch, "sequences")->check(CLI::Range(1, 4096));
  cmd->add_option("--dim", a->dim, "model width D")->check(CLI::Range(8, 65536));
  cmd->add_option("--reps", a->reps, "timed steps")->check(CLI::Range(1, 100000));
  cmd->add_option("--doc-len", a->doc_len, "packed documents of this many tokens (0: one sequence)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--timeout-s", a->timeout_s, "rendezvous and collective timeout")->check(CLI::Range(1, 86400));
  cmd->callback([a, &action] {
    action = [a] {
      try {
        return run_context(*a);
      } catch (const ConfigError& e) {
        fmt::print(stderr, "bench context: {}\n", e.what());
        return 2;
      }
    };
  });
}

}  // namespace attnlab::cli
