// One rank of the context-parallel contract test (context_parallel_test.cpp starts 2 or 4): for
// every registered mixer (and option variant, tests/common/mixer_variants.h) and every strategy
// it declares, the ranks split one fp64 sequence into contiguous shards, run the mixer on their
// shard with the CP group, and check their outputs, their input gradients and the all-reduced
// parameter gradients against the whole sequence run on this rank alone. The strategies of one
// mixer must also agree with each other. Exit 0 only if every check held.
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "framework/config/run_config.h"
#include "framework/dist/communicator.h"
#include "framework/model/mixer.h"
#include "tests/common/mixer_variants.h"
#include "tests/dist/worker_checks.h"

using attnlab::worker::expect_close;
using attnlab::worker::failures;

int main() {
  using namespace attnlab;
  const World w = world_from_env();
  CommOptions o;
  o.timeout = std::chrono::seconds(60);
  Communicator world(w, o);
  auto cp = world.subgroup([&] {
    std::vector<int64_t> all;
    for (int64_t r = 0; r < world.size(); ++r) all.push_back(r);
    return all;
  }(), "cp");
  const int64_t P = cp->size(), r = cp->rank(), D = 32, B = 2, S = 23, T = P * S;  // not a multiple of a chunk
  int tested = 0;
  for (const testing::MixerVariant& variant : testing::contract_variants()) {
    at::manual_seed(7);  // the same weights and data on every rank
    auto m = MixerRegistry::instance().find(variant.type)->create(*variant.spec().options, MixerShape{D, 0, 2, 4096});
    if (m->cp_strategies().empty()) continue;
    m->to(at::kDouble);
    at::Tensor x = at::randn({B, T, D}, at::kDouble), wgt = at::randn({B, T, D}, at::kDouble);

    // The whole sequence on this rank alone.
    at::Tensor xf = x.clone().requires_grad_(true);
    at::Tensor yf = m->forward(xf, {});
    (yf * wgt).sum().backward();
    std::vector<at::Tensor> want;
    for (auto& p : m->parameters())
      want.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p)), p.mutable_grad() = at::Tensor();

    at::Tensor first_strategy_output;
    for (CpStrategy strategy : m->cp_strategies()) {
      // This rank's shard with the group.
      at::Tensor xs = x.narrow(1, r * S, S).clone().requires_grad_(true);
      MixerContext ctx;
      ctx.cp = cp.get();
      ctx.cp_strategy = strategy;
      ctx.positions = at::arange(r * S, (r + 1) * S, at::kLong).unsqueeze(0).expand({B, S});
      const auto before = cp->stats().bytes;
      at::Tensor ys = m->forward(xs, ctx);
      const auto after_forward = cp->stats().bytes;
      (ys * wgt.narrow(1, r * S, S)).sum().backward();
      // The bytes this rank handed to each collective, forward and backward (docs/parallelism.md
      // sets them beside the strategy's formula).
      auto delta = [](const std::map<std::string, int64_t>& a, const std::map<std::string, int64_t>& b) {
        std::string out;
        for (const auto& [k, v] : a) {
          const int64_t d = v - (b.count(k) ? b.at(k) : 0);
          if (d) out += " " + k + " " + std::to_string(d);
        }
        return out.empty() ? std::string(" none") : out;
      };
      const std::string tag = variant.label() + " (" + to_string(strategy) + ", cp " + std::to_string(P) + ")";
      std::printf("rank %lld: %s bytes: forward%s; backward%s (B %lld, shard %lld tokens, fp64)\n",
                  static_cast<long long>(r), tag.c_str(), delta(after_forward, before).c_str(),
                  delta(cp->stats().bytes, after_forward).c_str(), static_cast<long long>(B),
                  static_cast<long long>(S));
      expect_close(tag + " output shard", ys.detach(), yf.detach().narrow(1, r * S, S), r);
      expect_close(tag + " input gradient shard", xs.grad(), xf.grad().narrow(1, r * S, S), r);
      size_t i = 0;
      for (auto& p : m->named_parameters()) {
        at::Tensor g = p.value().grad().defined() ? p.value().grad().clone() : at::zeros_like(p.value());
        p.value().mutable_grad() = at::Tensor();
        cp->all_reduce(g);  // a parameter's gradient is the sum over the shards
        expect_close(tag + " gradient of " + p.key(), g, want[i++], r);
      }
      if (first_strategy_output.defined())
        expect_close(tag + " output against the mixer's first strategy", ys.detach(), first_strategy_output, r);
      else
        first_strategy_output = ys.detach();
      ++tested;
    }
  }
  attnlab::worker::expect(tested > 0, "no registered mixer declares a context-parallel strategy", r);
  std::printf("rank %lld of %lld: %d mixers under context parallelism: %s\n", static_cast<long long>(r),
              static_cast<long long>(P), tested, failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
