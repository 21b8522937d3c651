// Titans memory kernels (kernels/titans; docs/mixers/titans.md): the chunked dual form against
// the anchored loop, the online recurrence, the zero-learning-rate, linear-attention and
// delta-rule reductions, the C identity, streaming across calls, finite differences, and the
// second-order path.
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/log.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/linear/reference.h"
#include "kernels/titans/chunk_coefficients.h"
#include "kernels/titans/dual.h"
#include "kernels/titans/reference.h"
#include "tests/common/test_util.h"
#include "tests/kernels/titans_inputs.h"

namespace attnlab::kernels {
namespace {

using namespace test_inputs;

void expect_same_state(const std::string& what, const MemoryState& a, const MemoryState& b, double tol) {
  ASSERT_EQ(a.tau, b.tau) << what;
  for (size_t l = 0; l < a.weights.size(); ++l) {
    testing::expect_close(what + " W" + std::to_string(l), a.weights[l], b.weights[l], tol);
    testing::expect_close(what + " S" + std::to_string(l), a.momentum[l], b.momentum[l], tol);
    testing::expect_close(what + " anchor" + std::to_string(l), a.anchor[l], b.anchor[l], tol);
  }
}

struct DualCase {
  int64_t chunk, layers;
  MemoryActivation act;
  bool after;
  double max_grad_norm = 0;
};

class MemoryDual : public ::testing::TestWithParam<DualCase> {};

TEST_P(MemoryDual, EqualsTheAnchoredLoopOutputsAndFinalState) {
  const DualCase c = GetParam();
  at::manual_seed(11);
  const Inputs in = random_inputs(13, c.layers);
  MemorySpec spec;
  spec.chunk = c.chunk, spec.activation = c.act, spec.read_after_write = c.after, spec.loss_scale = 0.7;
  spec.max_grad_norm = c.max_grad_norm;
  const MemoryState s0 = start(in, true);
  auto [y_ref, s_ref] = memory_reference(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec);
  auto [y, s] = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec);
  testing::expect_close("y", y_ref, y, 1e-10);
  expect_same_state("final", s_ref, s, 1e-10);
}

INSTANTIATE_TEST_SUITE_P(All, MemoryDual,
                         ::testing::Values(DualCase{1, 2, MemoryActivation::gelu_tanh, true},
                                           DualCase{3, 1, MemoryActivation::gelu_tanh, true},
                                           DualCase{4, 2, MemoryActivation::silu, true},
                                           DualCase{4, 3, MemoryActivation::gelu_tanh, true},
                                           DualCase{16, 2, MemoryActivation::gelu_tanh, true},
                                           DualCase{4, 2, MemoryActivation::gelu_tanh, false},
                                           DualCase{5, 1, MemoryActivation::silu, false},
                                           DualCase{4, 2, MemoryActivation::gelu_tanh, true, 0.3},
                                           DualCase{3, 3, MemoryActivation::silu, false, 0.3}),
                         [](const auto& info) {
                           const DualCase& c = info.param;
                           // fmt::format: GCC 12's -Wstringop-overflow misfires on chained std::string +.
                           return fmt::format("b{}_L{}_{}{}{}", c.chunk, c.layers,
                                              c.act == MemoryActivation::silu ? "silu" : "gelu",
                                              c.after ? "" : "_read_before", c.max_grad_norm > 0 ? "_clamped" : "");
                         });

/// The paper's online recurrence (gradient at W_{t−1}), with the gradient from autograd: an
/// implementation independent of both kernels.
at::Tensor online(const Inputs& in, const MemorySpec& spec) {
  std::vector<at::Tensor> W = initial_memory_state(in.w0, B, at::kDouble).weights, S;
  for (auto& w : W) S.push_back(at::zeros_like(w));
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < in.q.size(2); ++t) {
    std::vector<at::Tensor> leaf;
    for (auto& w : W) leaf.push_back(w.detach().requires_grad_());
    const at::Tensor pred = memory_apply(in.k.select(2, t).unsqueeze(-2), leaf, spec.activation).squeeze(-2);
    const at::Tensor loss = spec.loss_scale * (pred - in.v.select(2, t)).pow(2).sum();
    const auto g = torch::autograd::grad({loss}, leaf);
    for (size_t l = 0; l < W.size(); ++l) {
      auto gate = [&](const at::Tensor& x) { return x.select(2, t).unsqueeze(-1).unsqueeze(-1); };
      S[l] = gate(in.eta) * S[l] - gate(in.theta) * g[l];
      W[l] = (1 - gate(in.alpha)) * W[l].detach() + S[l];
    }
    ys.push_back(memory_apply(in.q.select(2, t).unsqueeze(-2), W, spec.activation).squeeze(-2));
  }
  return at::stack(ys, 2);
}

TEST(MemoryDual, ChunkOfOneIsTheOnlineRecurrenceAndFourIsNot) {
  at::manual_seed(12);
  const Inputs in = random_inputs(12, 2);
  MemorySpec spec;
  spec.chunk = 1;
  const at::Tensor want = online(in, spec);
  const MemoryState s0 = start(in, false);
  testing::expect_close("b = 1", want, memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first, 1e-10);
  spec.chunk = 4;
  const at::Tensor b4 = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first;
  EXPECT_GT((b4 - want).abs().max().item<double>(), 1e-3);  // the anchored rule is another model
}

TEST(MemoryDual, ExplicitInnerGradientEqualsAutograd) {
  for (int64_t L : {1, 2, 3})
    for (auto act : {MemoryActivation::gelu_tanh, MemoryActivation::silu}) {
      const Inputs in = random_inputs(1, L);
      MemorySpec spec;
      spec.activation = act, spec.loss_scale = 1.3;
      std::vector<at::Tensor> W;
      for (auto& w : initial_memory_state(in.w0, B, at::kDouble).weights) W.push_back(w.detach().requires_grad_());
      const at::Tensor k = in.k.select(2, 0), v = in.v.select(2, 0);
      const at::Tensor pred = memory_apply(k.unsqueeze(-2), W, act).squeeze(-2);
      const auto want = torch::autograd::grad({spec.loss_scale * (pred - v).pow(2).sum()}, W);
      const auto got = memory_inner_gradient(k, v, W, spec);
      for (int64_t l = 0; l < L; ++l) testing::expect_close("layer " + std::to_string(l), want[l], got[l], 1e-12);
    }
}

TEST(MemoryDual, ClampedInnerGradientsAreBoundedAndSmallOnesUntouched) {
  const Inputs in = random_inputs(1, 2);
  MemorySpec spec;
  spec.loss_scale = 3.0;
  const auto W = initial_memory_state(in.w0, B, at::kDouble).weights;
  const at::Tensor k = in.k.select(2, 0), v = 5 * in.v.select(2, 0);
  const auto raw = memory_inner_gradient(k, v, W, spec);
  spec.max_grad_norm = 0.5;
  const auto clamped = memory_inner_gradient(k, v, W, spec);
  double largest = 0;
  for (size_t l = 0; l < raw.size(); ++l) {
    const at::Tensor n = raw[l].flatten(2).norm(2, -1), m = clamped[l].flatten(2).norm(2, -1);
    largest = std::max(largest, n.max().item<double>());
    EXPECT_LE(m.max().item<double>(), 0.5 + 1e-12);
    testing::expect_close("G tanh(n/G)", 0.5 * at::tanh(n / 0.5), m, 1e-12);
  }
  EXPECT_GT(largest, 1.0);  // the clamp acted
  spec.max_grad_norm = 1e9;  // far above: 1 − (n/G)²/3 ≈ 1
  const auto loose = memory_inner_gradient(k, v, W, spec);
  for (size_t l = 0; l < raw.size(); ++l) testing::expect_close("loose", raw[l], loose[l], 1e-9);
}

TEST(MemoryDual, ZeroLearningRateReadsTheInitialMemory) {
  Inputs in = random_inputs(9, 2);
  in.theta.zero_(), in.alpha.zero_();
  MemorySpec spec;
  spec.chunk = 4;
  const MemoryState s0 = start(in, false);
  const at::Tensor want = memory_apply(in.q, s0.weights, spec.activation);
  EXPECT_TRUE(at::equal(want, memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first));
  // A linear memory under constant forgetting and no learning: y_t = (1 − α)^{t+1} q_t W_0.
  Inputs lin = random_inputs(9, 1);
  lin.theta.zero_(), lin.alpha.fill_(0.1);
  const MemoryState l0 = start(lin, false);
  const at::Tensor decay = at::pow(0.9, at::arange(1, 10, at::kDouble)).view({1, 1, 9, 1});
  testing::expect_close("decayed", decay * at::matmul(lin.q, l0.weights[0]),
                        memory_dual(lin.q, lin.k, lin.v, lin.theta, lin.alpha, lin.eta, l0, spec).first, 1e-12);
}

TEST(MemoryDual, LinearMemoryOfOneChunkIsDecayedLinearAttention) {
  at::manual_seed(13);
  Inputs in = random_inputs(11, 1);
  in.w0[0].zero_(), in.eta.zero_();
  MemorySpec spec;
  spec.chunk = 11, spec.loss_scale = 0.5;
  const MemoryState s0 = start(in, false);
  const at::Tensor y = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first;
  // Our linear-attention kernel: S_t = (1 − α_t) S_{t−1} + k_t (2cθ_t v_t)ᵀ, o_t = S_tᵀ q_t.
  const at::Tensor g = at::log(1 - in.alpha).unsqueeze(-1).expand({B, H, 11, d}).contiguous();
  const at::Tensor values = 2 * spec.loss_scale * in.theta.unsqueeze(-1) * in.v;
  const auto lin = linear_attention_recurrent_reference(in.q, in.k, values, g, at::Tensor(), 1.0);
  testing::expect_close("vs linear attention", lin.out, y, 1e-12);
}

TEST(MemoryDual, LinearMemoryWithoutMomentumIsTheDeltaRuleNotGatedDeltaNet) {
  at::manual_seed(14);
  Inputs in = random_inputs(10, 1);
  in.eta.zero_();
  MemorySpec spec;
  spec.chunk = 1;
  const at::Tensor y = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, start(in, false), spec).first;
  auto delta_rule = [&](bool gated_deltanet) {
    at::Tensor W = initial_memory_state(in.w0, B, at::kDouble).weights[0];
    std::vector<at::Tensor> ys;
    for (int64_t t = 0; t < 10; ++t) {
      const at::Tensor k = in.k.select(2, t).unsqueeze(-2), v = in.v.select(2, t).unsqueeze(-2);
      const at::Tensor a = (1 - in.alpha.select(2, t)).unsqueeze(-1).unsqueeze(-1);
      const at::Tensor beta = 2 * in.theta.select(2, t).unsqueeze(-1).unsqueeze(-1);
      // Titans: the gradient at the undecayed state; Gated DeltaNet decays first.
      const at::Tensor base = gated_deltanet ? a * W : W;
      W = a * W - beta * k.transpose(-1, -2).matmul(at::matmul(k, base) - v);
      ys.push_back(at::matmul(in.q.select(2, t).unsqueeze(-2), W).squeeze(-2));
    }
    return at::stack(ys, 2);
  };
  testing::expect_close("delta rule", delta_rule(false), y, 1e-12);
  EXPECT_GT((delta_rule(true) - y).abs().max().item<double>(), 1e-6);
}

TEST(MemoryDual, SegsumGivesTheTripleSumWithinBoundsAndNoNaNAtHardGates) {
  at::manual_seed(15);
  const int64_t n = 7;
  at::Tensor alpha = at::rand({n}, at::kDouble), eta = at::rand({n}, at::kDouble);
  const at::Tensor C = at::matmul(segsum_exp(at::log(1 - alpha)), segsum_exp(at::log(eta)));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t i = j; i <= t; ++i) {
        double pa = 1, pe = 1;
        for (int64_t m = i + 1; m <= t; ++m) pa *= 1 - alpha[m].item<double>();
        for (int64_t m = j + 1; m <= i; ++m) pe *= eta[m].item<double>();
        want += pa * pe;
      }
      EXPECT_NEAR(C[t][j].item<double>(), want, 1e-13);
      EXPECT_GE(C[t][j].item<double>(), 0.0);
      EXPECT_LE(C[t][j].item<double>(), static_cast<double>(std::max<int64_t>(0, t - j + 1)) + 1e-12);
    }
  // η = 0 and α = 1 somewhere: finite forward and backward.
  Inputs in = random_inputs(8, 2);
  in.eta[0][0][3] = 0.0, in.alpha[1][2][5] = 1.0;
  for (auto* t : {&in.q, &in.k, &in.v, &in.theta, &in.alpha, &in.eta}) t->requires_grad_();
  MemorySpec spec;
  spec.chunk = 8;
  const MemoryState s0 = start(in, true);
  const at::Tensor y = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first;
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  for (const auto& g : torch::autograd::grad({y.sum()}, {in.q, in.k, in.v, in.theta, in.alpha, in.eta}))
    EXPECT_TRUE(at::isfinite(g).all().item<bool>());
  const at::Tensor y_ref = memory_reference(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec).first;
  testing::expect_close("hard gates", y_ref, y, 1e-10);
}

TEST(MemoryDual, StreamingAcrossCallsEqualsOneCall) {
  at::manual_seed(16);
  const Inputs in = random_inputs(14, 2);
  MemorySpec spec;
  spec.chunk = 4;
  const MemoryState s0 = start(in, true);
  auto [y, s] = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec);
  for (int64_t split : {4, 6, 1, 13}) {  // at a chunk boundary, inside one, and at the edges
    auto part = [&](const at::Tensor& t, bool first) { return first ? t.narrow(2, 0, split) : t.narrow(2, split, 14 - split); };
    auto call = [&](bool first, const MemoryState& from, bool dual) {
      auto f = dual ? memory_dual : memory_reference;
      return f(part(in.q, first), part(in.k, first), part(in.v, first), part(in.theta, first), part(in.alpha, first),
               part(in.eta, first), from, spec);
    };
    auto [y1, s1] = call(true, s0, true);
    // The second part by the dual form, and by the token loop (the decoding path).
    for (bool dual : {true, false}) {
      auto [y2, s2] = call(false, s1, dual);
      testing::expect_close("split " + std::to_string(split), y, at::cat({y1, y2}, 2), 1e-10);
      expect_same_state("split " + std::to_string(split), s, s2, 1e-10);
    }
  }
}

TEST(MemoryDual, GradientsMatchFiniteDifferencesAndTheSecondOrderPathIsLive) {
  at::manual_seed(17);
  Inputs in = random_inputs(7, 2);
  MemorySpec spec;
  spec.chunk = 3;
  MemoryState s0 = start(in, true);
  std::vector<at::Tensor*> wrt{&in.q, &in.k, &in.v, &in.theta, &in.alpha, &in.eta, &in.w0[0], &in.w0[1], &s0.momentum[1]};
  for (auto* t : wrt) *t = t->detach().requires_grad_();
  auto loss = [&]() {
    MemoryState s = initial_memory_state(in.w0, B, at::kDouble);
    s.momentum = {s0.momentum[0], s0.momentum[1]};
    const auto [y, fin] = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s, spec);
    return (y * at::cos(y)).sum() + fin.weights[1].pow(2).sum();
  };
  std::vector<at::Tensor> leaves;
  for (auto* t : wrt) leaves.push_back(*t);
  const auto grads = torch::autograd::grad({loss()}, leaves);
  for (size_t i = 0; i < wrt.size(); ++i) {
    const at::Tensor dir = at::randn_like(*wrt[i]);
    const double h = 1e-6;
    double plus, minus;
    {
      at::NoGradGuard g;
      wrt[i]->add_(h * dir);
      plus = loss().item<double>();
      wrt[i]->sub_(2 * h * dir);
      minus = loss().item<double>();
      wrt[i]->add_(h * dir);
    }
    const double fd = (plus - minus) / (2 * h), an = (grads[i] * dir).sum().item<double>();
    EXPECT_NEAR(an, fd, 1e-6 * std::max(1.0, std::abs(fd))) << "input " << i;
  }
  // k and v reach the output only through the inner gradient: their gradients are not zero.
  EXPECT_GT(grads[1].abs().max().item<double>(), 1e-6);
  EXPECT_GT(grads[2].abs().max().item<double>(), 1e-6);
}

TEST(MemoryDual, ZeroInitialMlpMemoryNeverLearns) {
  Inputs in = random_inputs(8, 2);
  for (auto& w : in.w0) w.zero_();
  MemorySpec spec;
  spec.chunk = 4;
  const auto [y, s] = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, start(in, false), spec);
  EXPECT_EQ(y.abs().max().item<double>(), 0.0);  // σ(0) = 0: every inner gradient vanishes
  EXPECT_EQ(s.weights[0].abs().max().item<double>(), 0.0);
}

TEST(MemoryDual, TrailingNoLearningTokensLeaveEarlierOutputsAndOnlyDriftByTheMomentum) {
  // θ = 0, α = 0, η = 1 on appended tokens: earlier outputs cannot change (causality) and
  // S stays, but W still moves by S per token (W_t = W_{t−1} + S_t): such padding is a no-op
  // only when S = 0 (docs/mixers/titans.md, "Padding").
  at::manual_seed(18);
  Inputs in = random_inputs(10, 2);
  MemorySpec spec;
  spec.chunk = 4;
  const MemoryState s0 = start(in, true);
  auto head = [](const at::Tensor& t) { return t.narrow(2, 0, 7).contiguous(); };
  in.theta.narrow(2, 7, 3).zero_(), in.alpha.narrow(2, 7, 3).zero_(), in.eta.narrow(2, 7, 3).fill_(1.0);
  const auto [y, s] = memory_dual(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s0, spec);
  const auto [y7, s7] = memory_dual(head(in.q), head(in.k), head(in.v), head(in.theta), head(in.alpha), head(in.eta), s0, spec);
  testing::expect_close("real outputs", y7, y.narrow(2, 0, 7), 1e-12);
  for (size_t l = 0; l < 2; ++l) {
    testing::expect_close("S", s7.momentum[l], s.momentum[l], 1e-12);
    testing::expect_close("W", s7.weights[l] + 3 * s7.momentum[l], s.weights[l], 1e-10);
  }
}

}  // namespace
}  // namespace attnlab::kernels
