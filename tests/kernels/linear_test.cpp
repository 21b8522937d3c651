// The linear-attention kernel family against its float64 definition (docs/kernels/linear.md):
// every implementation (recurrent, chunked at several chunk/sub-chunk sizes, fused CPU) equals
// the log-space reference for outputs, final state and every gradient (q, k, v, g, S0),
// on awkward lengths, strong gates, state carry, and the special cases GLA ⊃ Lightning ⊃ LA.
#include <ATen/ops/cumsum.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/log_sigmoid.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/cat.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "kernels/linear/api.h"
#include "kernels/linear/cuda_smem.h"
#include "kernels/linear/reference.h"
#include "tests/common/test_util.h"

namespace attnlab::kernels {
namespace {
using testing::expect_close;

struct Inputs {
  at::Tensor q, k, v, g, s0;
};

/// Random inputs; log-gates logsigmoid(z)/tau with z ~ N(0, zscale²) (fla-style gate sweep).
Inputs make_inputs(int64_t B, int64_t H, int64_t T, int64_t dk, int64_t dv, at::ScalarType dt,
                   double tau = 16, double zscale = 1, bool with_state = true) {
  auto o = at::TensorOptions().dtype(dt);
  Inputs in;
  in.q = at::randn({B, H, T, dk}, o), in.k = at::randn({B, H, T, dk}, o);
  in.v = at::randn({B, H, T, dv}, o);
  in.g = at::log_sigmoid(at::randn({B, H, T, dk}, o) * zscale) / tau;
  if (with_state) in.s0 = at::randn({B, H, dk, dv}, o.dtype(linear_state_dtype(dt)));
  return in;
}

LinearAttentionOptions opts(const std::string& kernel, int64_t C = 16, int64_t c = 4) {
  LinearAttentionOptions o;
  o.scale = 0.37, o.kernel = kernel, o.chunk_size = C, o.sub_chunk = c;
  return o;
}

/// Output, final state and the gradients of <out, W> + <S_T, Ws> w.r.t. q, k, v, g, S0.
struct Outcome {
  at::Tensor out, state, dq, dk, dv, dg, ds0;
};
Outcome run(const Inputs& x, const LinearAttentionOptions& o, const at::Tensor& w_out,
        const at::Tensor& w_state) {
  auto leaf = [](const at::Tensor& t) { return t.defined() ? t.detach().clone().requires_grad_(true) : t; };
  at::Tensor q = leaf(x.q), k = leaf(x.k), v = leaf(x.v), g = leaf(x.g), s0 = leaf(x.s0);
  auto r = linear_attention(q, k, v, g, s0, o);
  at::Tensor loss = (r.out * w_out).sum();
  if (w_state.defined()) loss = loss + (r.final_state * w_state).sum();
  loss.backward();
  return {r.out.detach(), r.final_state.detach(), q.grad(), k.grad(), v.grad(), g.grad(),
          s0.defined() ? s0.grad() : at::Tensor()};
}

void expect_same(const Outcome& ref, const Outcome& got, double tol, const std::string& what) {
  expect_close(what + " out", ref.out, got.out, tol);
  expect_close(what + " final state", ref.state, got.state, tol);
  expect_close(what + " dq", ref.dq, got.dq, tol);
  expect_close(what + " dk", ref.dk, got.dk, tol);
  expect_close(what + " dv", ref.dv, got.dv, tol);
  expect_close(what + " dg", ref.dg, got.dg, tol);
  if (ref.ds0.defined()) expect_close(what + " dS0", ref.ds0, got.ds0, tol);
}

class LinearForms : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { at::manual_seed(GetParam()); }
};

TEST_P(LinearForms, AllImplementationsMatchReferenceInFloat64) {
  const int64_t T = GetParam();
  Inputs x = make_inputs(2, 3, T, 5, 7, at::kDouble, /*tau=*/1.0, /*zscale=*/2.0);
  at::Tensor w_out = at::randn({2, 3, T, 7}, at::kDouble), w_state = at::randn({2, 3, 5, 7}, at::kDouble);
  const Outcome ref = run(x, opts("reference"), w_out, w_state);
  expect_same(ref, run(x, opts("recurrent"), w_out, w_state), 1e-10, "recurrent");
  for (auto [C, c] : {std::pair<int64_t, int64_t>{16, 4}, {32, 8}, {64, 16}, {16, 16}, {8, 2}}) {
    const std::string tag = "C=" + std::to_string(C) + " c=" + std::to_string(c);
    expect_same(ref, run(x, opts("chunked", C, c), w_out, w_state), 1e-10, "chunked " + tag);
    expect_same(ref, run(x, opts("fused", C, c), w_out, w_state), 1e-10, "fused " + tag);
  }
}

TEST_P(LinearForms, FusedFloat32MatchesFloat64Reference) {
  const int64_t T = GetParam();
  Inputs x64 = make_inputs(2, 2, T, 16, 12, at::kDouble);
  Inputs x32{x64.q.to(at::kFloat), x64.k.to(at::kFloat), x64.v.to(at::kFloat),
             x64.g.to(at::kFloat), x64.s0.to(at::kFloat)};
  at::Tensor w_out = at::randn({2, 2, T, 12}, at::kDouble), w_state = at::randn({2, 2, 16, 12}, at::kDouble);
  const Outcome ref = run(x64, opts("reference"), w_out, w_state);
  const Outcome got = run(x32, opts("fused", 64, 16), w_out.to(at::kFloat), w_state.to(at::kFloat));
  expect_same(ref, got, 1e-5, "fused fp32");
  EXPECT_EQ(got.state.scalar_type(), at::kFloat);
}

INSTANTIATE_TEST_SUITE_P(Lengths, LinearForms, ::testing::Values(1, 7, 63, 65, 200));

TEST(LinearKernels, StrongGatesStayFiniteAndAccurate) {
  for (double tau : {0.1, 1.0, 16.0}) {
    at::manual_seed(3);
    Inputs x = make_inputs(1, 2, 130, 8, 8, at::kDouble, tau, /*zscale=*/20.0);
    at::Tensor w_out = at::randn({1, 2, 130, 8}, at::kDouble), w_state = at::randn({1, 2, 8, 8}, at::kDouble);
    const Outcome ref = run(x, opts("reference"), w_out, w_state);
    Inputs x32{x.q.to(at::kFloat), x.k.to(at::kFloat), x.v.to(at::kFloat), x.g.to(at::kFloat),
               x.s0.to(at::kFloat)};
    for (const char* kernel : {"chunked", "fused"}) {
      const Outcome got = run(x32, opts(kernel, 64, 16), w_out.to(at::kFloat), w_state.to(at::kFloat));
      for (const at::Tensor& t : {got.out, got.state, got.dq, got.dk, got.dv, got.dg, got.ds0})
        EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << kernel << " tau=" << tau;
      expect_same(ref, got, 1e-4, std::string(kernel) + " tau=" + std::to_string(tau));
    }
  }
}

TEST(LinearKernels, SplitSequenceWithStateCarryEqualsWhole) {
  at::manual_seed(4);
  Inputs x = make_inputs(2, 2, 100, 6, 5, at::kDouble);
  for (const char* kernel : {"chunked", "fused", "recurrent"}) {
    auto whole = linear_attention(x.q, x.k, x.v, x.g, x.s0, opts(kernel));
    auto part = [&](const at::Tensor& t, int64_t a, int64_t n) { return t.narrow(2, a, n); };
    auto first = linear_attention(part(x.q, 0, 37), part(x.k, 0, 37), part(x.v, 0, 37),
                                  part(x.g, 0, 37), x.s0, opts(kernel));
    auto second = linear_attention(part(x.q, 37, 63), part(x.k, 37, 63), part(x.v, 37, 63),
                                   part(x.g, 37, 63), first.final_state, opts(kernel));
    expect_close(std::string(kernel) + " split out", whole.out, at::cat({first.out, second.out}, 2), 1e-12);
    expect_close(std::string(kernel) + " split state", whole.final_state, second.final_state, 1e-12);
  }
}

TEST(LinearKernels, ConstantPerHeadGateEqualsScalarGateMode) {
  // GLA with g_t ≡ log λ_h broadcast over dk is Lightning (docs/kernels/linear.md,
  // "The recurrence").
  at::manual_seed(5);
  Inputs x = make_inputs(2, 3, 41, 4, 6, at::kDouble);
  at::Tensor log_lambda = -at::rand({3}, at::kDouble) * 2;  // [H]
  at::Tensor g_full = log_lambda.view({1, 3, 1, 1}).expand({2, 3, 41, 4}).contiguous();
  for (const char* kernel : {"reference", "chunked", "fused"}) {
    auto vec = linear_attention(x.q, x.k, x.v, g_full, x.s0, opts(kernel));
    auto scal = linear_attention(x.q, x.k, x.v, log_lambda, x.s0, opts(kernel));
    expect_close(std::string(kernel) + " scalar gate", vec.out, scal.out, 1e-12);
  }
}

TEST(LinearKernels, ZeroGateIsPlainCausalLinearAttention) {
  at::manual_seed(6);
  Inputs x = make_inputs(1, 2, 50, 4, 3, at::kDouble, 1, 1, /*with_state=*/false);
  at::Tensor mask = at::ones({50, 50}, at::kDouble).tril();
  at::Tensor plain = at::matmul(at::matmul(x.q, x.k.transpose(2, 3)) * 0.37 * mask, x.v);
  for (const char* kernel : {"reference", "chunked", "fused"}) {
    expect_close(std::string(kernel) + " g=0", plain,
                 linear_attention(x.q, x.k, x.v, at::Tensor(), {}, opts(kernel)).out, 1e-12);
  }
}

TEST(LinearKernels, VanishingGateKeepsOnlyTheCurrentToken) {
  // α → 0: o_t = scale·(q_t·k_t) v_t. A finite −1e4 stands in for −∞ (−∞ − −∞ is NaN).
  at::manual_seed(7);
  Inputs x = make_inputs(1, 2, 70, 4, 3, at::kDouble, 1, 1, false);
  at::Tensor g = at::full({1, 2, 70, 4}, -1e4, at::kDouble);
  at::Tensor expected = (x.q * x.k).sum(-1, true) * x.v * 0.37;
  for (const char* kernel : {"reference", "chunked", "fused"})
    expect_close(std::string(kernel) + " g=-inf", expected,
                 linear_attention(x.q, x.k, x.v, g, {}, opts(kernel)).out, 1e-12);
}

TEST(LinearKernels, GateGradientClosedFormNeedsTheFinalStateTerm) {
  // dg = revcumsum(q⊙dq − k⊙dk) + rowsum(S_T ⊙ dS_T), with and without the last term
  // (docs/kernels/linear.md, "Backward").
  at::manual_seed(8);
  Inputs x = make_inputs(1, 2, 30, 4, 3, at::kDouble);
  at::Tensor w_out = at::randn({1, 2, 30, 3}, at::kDouble), w_state = at::randn({1, 2, 4, 3}, at::kDouble);
  const Outcome r = run(x, opts("reference"), w_out, w_state);
  at::Tensor D = x.q * r.dq - x.k * r.dk;
  at::Tensor rev = at::flip(at::cumsum(at::flip(D, {2}), 2), {2});
  at::Tensor rowsum = (r.state * w_state).sum(-1).unsqueeze(2);  // [B, H, 1, dk]
  expect_close("closed-form dg", r.dg, rev + rowsum, 1e-10);
  EXPECT_GT(testing::rel_rms(r.dg, rev), 1e-3) << "the final-state term should matter here";
}

TEST(LinearKernels, FusedMatchesFiniteDifferences) {
  // gradcheck at tiny sizes (B=1, T=9, H=2, dk=3, dv=2), central differences in fp64.
  at::manual_seed(9);
  Inputs x = make_inputs(1, 2, 9, 3, 2, at::kDouble, 1, 2);
  at::Tensor w_out = at::randn({1, 2, 9, 2}, at::kDouble), w_state = at::randn({1, 2, 3, 2}, at::kDouble);
  const Outcome r = run(x, opts("fused", 4, 2), w_out, w_state);
  auto loss = [&](const Inputs& in) {
    auto o = linear_attention(in.q, in.k, in.v, in.g, in.s0, opts("fused", 4, 2));
    return ((o.out * w_out).sum() + (o.final_state * w_state).sum()).item<double>();
  };
  std::vector<std::pair<at::Tensor Inputs::*, at::Tensor>> fields = {
      {&Inputs::q, r.dq}, {&Inputs::k, r.dk}, {&Inputs::v, r.dv}, {&Inputs::g, r.dg}, {&Inputs::s0, r.ds0}};
  for (auto& [field, analytic] : fields) {
    at::Tensor numeric = at::zeros_like(analytic);
    const at::Tensor flat = (x.*field).view(-1);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      Inputs plus = x, minus = x;
      plus.*field = (x.*field).clone(), minus.*field = (x.*field).clone();
      (plus.*field).view(-1)[i] += 1e-6;
      (minus.*field).view(-1)[i] -= 1e-6;
      numeric.view(-1)[i] = (loss(plus) - loss(minus)) / 2e-6;
    }
    expect_close("finite differences", numeric, analytic, 1e-7);
  }
}

TEST(LinearKernels, RejectsBadShapesWithTheirNames) {
  Inputs x = make_inputs(1, 2, 5, 3, 2, at::kFloat);
  try {
    linear_attention(x.q, x.k.narrow(3, 0, 2), x.v, x.g, {}, opts("fused"));
    FAIL() << "expected a shape error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("k has shape"), std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_THROW(linear_attention(x.q, x.k, x.v, x.g, {}, opts("fused", 16, 5)), c10::Error);
}

TEST(LinearCudaSmem, LargeHeadsAtLargeChunksAreRefusedNamingDkAndC) {
  // An H100/H200 lets a block opt in to 227 KB. dk = 128 at C = 64 fits; dk = 256 at C = 64
  // does not (the output kernel alone holds q, k, ell and q ⊙ e^ell: 4·64·256 floats).
  const size_t h100 = 227 * 1024;
  EXPECT_EQ(linear_cuda_smem_problem(128, 64, h100), "");
  const std::string why = linear_cuda_smem_problem(256, 64, h100);
  EXPECT_NE(why.find("dk = 256 at chunk_size C = 64"), std::string::npos) << why;
  EXPECT_NE(why.find("more than this device's 232448"), std::string::npos) << why;
  EXPECT_EQ(linear_cuda_smem_problem(256, 32, h100), "") << "a smaller chunk is the way out";
  EXPECT_GE(linear_cuda_smem_bytes(256, 64).output, sizeof(float) * 4 * 64 * 256);
}

}  // namespace
}  // namespace attnlab::kernels
