// One rank of the context-parallel contract test (context_parallel_test.cpp starts 2 or 4): for
// every registered mixer (and option variant, tests/common/mixer_variants.h) and every strategy
// it declares, the ranks split one fp64 sequence into contiguous shards, run the mixer on their
// shard with the CP group, and check their outputs, their input gradients and the all-reduced
// parameter gradients against the whole sequence run on this rank alone. The strategies of one
// mixer must also agree with each other. All of it again with packed documents, against each
// document run alone, and once in fp32 (to 1e-5). Exit 0 only if every check held.
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "framework/config/run_config.h"
#include "framework/dist/communicator.h"
#include "framework/model/documents.h"
#include "framework/model/mixer.h"
#include "tests/common/mixer_variants.h"
#include "tests/dist/worker_checks.h"

using attnlab::worker::expect_close;
using attnlab::worker::failures;

namespace {
using namespace attnlab;

// Document ids [B, T] with boundaries inside a kernel chunk (5), one that makes a one-token
// document right before a shard edge and one on the edge (S - 1, S), one mid-shard (2S + 3),
// and in row 0 a document from S + 9 to the end, spanning whole shards (its state must cross
// them with their decays).
at::Tensor test_documents(int64_t B, int64_t T, int64_t S) {
  const std::vector<std::vector<int64_t>> starts = {{5, S + 9}, {S - 1, S, 2 * S + 3}};
  at::Tensor ids = at::zeros({B, T}, at::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t start : starts[b % 2])
      if (start < T) ids[b].narrow(0, start, T - start).add_(1);
  return ids;
}

std::string bytes_between(const std::map<std::string, int64_t>& a, const std::map<std::string, int64_t>& b) {
  std::string out;
  for (const auto& [k, v] : a) {
    const int64_t d = v - (b.count(k) ? b.at(k) : 0);
    if (d) out += " " + k + " " + std::to_string(d);
  }
  return out.empty() ? std::string(" none") : out;
}

/// One variant, with or without packed documents, in fp64 (to 1e-10) or fp32 (to 1e-5, titans 5e-5): the
/// whole sequence here, then every strategy on the shards. Returns the number of strategies
/// checked.
int check_variant(const testing::MixerVariant& variant, bool packed, at::ScalarType dtype, Communicator& cp) {
  // fp64 is the exactness check. In fp32 the shards' different association (a titans shard
  // starts mid-chunk, so its pieces differ from the whole run's) is amplified by the memory's
  // inner gradient steps: measured 1.2e-5 on one gate's gradient at cp 4, so titans gets 5e-5.
  const double tol = dtype == at::kDouble ? 1e-10 : (variant.type == "titans" ? 5e-5 : 1e-5);
  const int64_t P = cp.size(), r = cp.rank(), D = 32, B = 2, S = 23, T = P * S;  // not a multiple of a chunk
  at::manual_seed(7);  // the same weights and data on every rank
  auto m = MixerRegistry::instance().find(variant.type)->create(*variant.spec().options, MixerShape{D, 0, 2, 4096});
  if (m->cp_strategies().empty()) return 0;
  if (packed && !m->handles_documents()) return 0;  // the model refuses packed documents under CP for it
  m->to(dtype);
  at::Tensor x = at::randn({B, T, D}, dtype), wgt = at::randn({B, T, D}, dtype);
  MixerContext whole;
  if (packed) whole.documents = test_documents(B, T, S);

  // The whole sequence on this rank alone (packed: each document alone, the generic rows path).
  at::Tensor xf = x.clone().requires_grad_(true);
  at::Tensor yf = packed ? mix_as_document_rows(*m, xf, whole) : m->forward(xf, whole);
  (yf * wgt).sum().backward();
  std::vector<at::Tensor> want;
  for (auto& p : m->parameters())
    want.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p)), p.mutable_grad() = at::Tensor();

  at::Tensor first_strategy_output;
  int checked = 0;
  for (CpStrategy strategy : m->cp_strategies()) {
    if (!m->cp_supports(strategy, P)) continue;
    at::Tensor xs = x.narrow(1, r * S, S).clone().requires_grad_(true);
    MixerContext ctx;  // this rank's shard with the group
    ctx.cp = &cp;
    ctx.cp_strategy = strategy;
    if (packed) {
      ctx.documents = whole.documents.narrow(1, r * S, S);
      ctx.positions = positions_in_documents(whole.documents).narrow(1, r * S, S);
    } else {
      ctx.positions = at::arange(r * S, (r + 1) * S, at::kLong).unsqueeze(0).expand({B, S});
    }
    const auto before = cp.stats().bytes;
    at::Tensor ys = mix_documents(*m, xs, ctx);
    const auto after_forward = cp.stats().bytes;
    (ys * wgt.narrow(1, r * S, S)).sum().backward();
    const std::string tag = variant.label() + (packed ? " packed" : "") + (dtype == at::kFloat ? " fp32" : "") +
                            " (" + to_string(strategy) + ", cp " + std::to_string(P) + ")";
    // The bytes this rank handed to each collective (docs/parallelism.md sets them beside the
    // strategy's formula).
    std::printf("rank %lld: %s bytes: forward%s; backward%s (B %lld, shard %lld tokens)\n",
                static_cast<long long>(r), tag.c_str(), bytes_between(after_forward, before).c_str(),
                bytes_between(cp.stats().bytes, after_forward).c_str(), static_cast<long long>(B),
                static_cast<long long>(S));
    expect_close(tag + " output shard", ys.detach(), yf.detach().narrow(1, r * S, S), r, tol);
    expect_close(tag + " input gradient shard", xs.grad(), xf.grad().narrow(1, r * S, S), r, tol);
    size_t i = 0;
    for (auto& p : m->named_parameters()) {
      at::Tensor g = p.value().grad().defined() ? p.value().grad().clone() : at::zeros_like(p.value());
      p.value().mutable_grad() = at::Tensor();
      cp.all_reduce(g);  // a parameter's gradient is the sum over the shards
      // Floor: with documents shorter than Hedgehog's window, y = γW / γD and dy/dγ is rounding.
      expect_close(tag + " gradient of " + p.key(), g, want[i++], r, tol, 1e-3);
    }
    if (first_strategy_output.defined())
      expect_close(tag + " output against the mixer's first strategy", ys.detach(), first_strategy_output, r, tol);
    else
      first_strategy_output = ys.detach();
    ++checked;
  }
  return checked;
}
}  // namespace

int main() {
  const World w = world_from_env();
  CommOptions o;
  o.timeout = std::chrono::seconds(60);
  Communicator world(w, o);
  auto cp = world.subgroup([&] {
    std::vector<int64_t> all;
    for (int64_t r = 0; r < world.size(); ++r) all.push_back(r);
    return all;
  }(), "cp");
  int tested = 0;
  for (const testing::MixerVariant& variant : testing::contract_variants()) {
    for (bool packed : {false, true}) tested += check_variant(variant, packed, at::kDouble, *cp);
    tested += check_variant(variant, /*packed=*/false, at::kFloat, *cp);
  }
  const int64_t r = cp->rank();
  attnlab::worker::expect(tested > 0, "no registered mixer declares a context-parallel strategy", r);
  std::printf("rank %lld of %lld: %d mixer x strategy x packing cases under context parallelism: %s\n",
              static_cast<long long>(r), static_cast<long long>(cp->size()), tested, failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
