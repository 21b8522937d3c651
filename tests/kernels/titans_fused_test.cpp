// The fused Titans memory, both engines (the raw CPU loops and the batched ATen ops that CUDA
// runs), against the torch dual form (itself tested against the anchored token loop in
// titans_test.cpp): outputs, the end state and every gradient, in fp64 and fp32.
#include <ATen/TensorOperators.h>
#include <ATen/ops/randn_like.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/titans/dual.h"
#include "kernels/titans/fused.h"
#include "kernels/titans/reference.h"
#include "tests/common/test_util.h"
#include "tests/kernels/titans_inputs.h"

namespace attnlab::kernels {
namespace {

using namespace test_inputs;

struct FusedCase {
  int64_t N, chunk, layers;
  MemoryActivation act;
  bool after;
  double max_grad_norm;
  int64_t tau;  ///< tokens of the first chunk consumed before the call
};

/// Every input that has a gradient, in a fixed order: q, k, v, θ, α, η, W0 per layer, S per layer.
std::vector<at::Tensor> leaves(const Inputs& in, const MemoryState& s) {
  std::vector<at::Tensor> out{in.q, in.k, in.v, in.theta, in.alpha, in.eta};
  out.insert(out.end(), in.w0.begin(), in.w0.end());
  out.insert(out.end(), s.momentum.begin(), s.momentum.end());
  return out;
}

struct KernelRun {
  at::Tensor y;
  MemoryState end;
  std::vector<at::Tensor> grads;
};

/// y and the end state from `kernel`, then the gradients of a random linear function of all of
/// them (so the end state's gradient paths, the anchor's included, are checked too).
KernelRun run(MemoryKernel kernel, const Inputs& raw, const MemoryState& momentum, const MemorySpec& spec, int64_t tau,
        at::ScalarType dtype) {
  Inputs in = raw;
  for (at::Tensor* t : {&in.q, &in.k, &in.v, &in.theta, &in.alpha, &in.eta}) *t = t->to(dtype).requires_grad_();
  for (auto& w : in.w0) w = w.to(dtype).requires_grad_();
  MemoryState s = initial_memory_state(in.w0, B, dtype);
  for (size_t l = 0; l < s.momentum.size(); ++l) s.momentum[l] = momentum.momentum[l].to(dtype).requires_grad_();
  std::vector<at::Tensor> grad_of = leaves(in, s);
  if (tau > 0) {  // a few tokens through the dual form first: the call starts inside a chunk
    auto lead = [&](const at::Tensor& t) { return t.narrow(2, 0, tau); };
    s = memory_dual(lead(in.q), lead(in.k), lead(in.v), lead(in.theta), lead(in.alpha), lead(in.eta), s, spec).second;
  }
  auto rest = [&](const at::Tensor& t) { return t.narrow(2, tau, t.size(2) - tau); };
  auto [y, end] = kernel(rest(in.q), rest(in.k), rest(in.v), rest(in.theta), rest(in.alpha), rest(in.eta), s, spec);
  at::manual_seed(5);
  at::Tensor loss = (y * at::randn_like(y)).sum();
  for (size_t l = 0; l < end.weights.size(); ++l)
    for (const at::Tensor& t : {end.weights[l], end.momentum[l], end.anchor[l]}) loss = loss + (t * at::randn_like(t)).sum();
  KernelRun r{y.detach(), end, torch::autograd::grad({loss}, grad_of, {}, false, false, true)};
  return r;
}

void PrintTo(const FusedCase& c, std::ostream* os) {
  *os << fmt::format("N {} chunk {} layers {} clamp {} tau {}", c.N, c.chunk, c.layers, c.max_grad_norm, c.tau);
}

MemorySpec spec_of(const FusedCase& c, double loss_scale) {
  MemorySpec spec;
  spec.chunk = c.chunk, spec.activation = c.act, spec.read_after_write = c.after, spec.loss_scale = loss_scale;
  spec.max_grad_norm = c.max_grad_norm;
  return spec;
}

/// The two engines of memory_fused, by name.
const std::pair<const char*, MemoryKernel> kEngines[] = {{"cpu", memory_fused}, {"batched", memory_fused_batched}};

class FusedMemory : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedMemory, EqualsTheDualFormForwardEndStateAndEveryGradient) {
  const FusedCase c = GetParam();
  at::manual_seed(3);
  const Inputs in = random_inputs(c.N, c.layers);
  const MemorySpec spec = spec_of(c, 0.7);
  const MemoryState momentum = start(in, true);
  const char* names[] = {"q", "k", "v", "theta", "alpha", "eta"};
  for (auto [dtype, tol] : {std::pair{at::kDouble, 1e-10}, std::pair{at::kFloat, 2e-5}}) {
    const KernelRun want = run(memory_dual, in, momentum, spec, c.tau, dtype);
    for (auto [engine, kernel] : kEngines) {
      const KernelRun got = run(kernel, in, momentum, spec, c.tau, dtype);
      const std::string at = fmt::format("{} {} ", engine, dtype == at::kDouble ? "fp64" : "fp32");
      testing::expect_close(at + "y", want.y, got.y, tol);
      ASSERT_EQ(want.end.tau, got.end.tau);
      for (size_t l = 0; l < want.end.weights.size(); ++l) {
        testing::expect_close(at + "W end", want.end.weights[l], got.end.weights[l], tol);
        testing::expect_close(at + "S end", want.end.momentum[l], got.end.momentum[l], tol);
        testing::expect_close(at + "anchor end", want.end.anchor[l], got.end.anchor[l], tol);
      }
      ASSERT_EQ(want.grads.size(), got.grads.size());
      for (size_t i = 0; i < want.grads.size(); ++i) {
        const std::string name = i < 6 ? names[i]
                                 : i < 6 + in.w0.size() ? fmt::format("W0[{}]", i - 6)
                                                        : fmt::format("S0[{}]", i - 6 - in.w0.size());
        ASSERT_TRUE(got.grads[i].defined()) << name;
        testing::expect_close(at + "d" + name, want.grads[i], got.grads[i], tol);
      }
    }
  }
}

TEST_P(FusedMemory, WithoutGradientsKeepsOnlyTheLastChunkStartAndGivesTheSameResult) {
  // Under no_grad the kernel keeps no per-chunk start states, only the last chunk's (the
  // anchor when the sequence ends inside a chunk).
  const FusedCase c = GetParam();
  at::manual_seed(4);
  const Inputs in = random_inputs(c.N, c.layers);
  const MemorySpec spec = spec_of(c, 1.0);
  at::NoGradGuard no_grad;
  MemoryState s = start(in, true);
  auto lead = [&](const at::Tensor& t) { return t.narrow(2, 0, c.tau); };
  auto rest = [&](const at::Tensor& t) { return t.narrow(2, c.tau, c.N - c.tau); };
  if (c.tau > 0) s = memory_dual(lead(in.q), lead(in.k), lead(in.v), lead(in.theta), lead(in.alpha), lead(in.eta), s, spec).second;
  auto call = [&](MemoryKernel f) {
    return f(rest(in.q), rest(in.k), rest(in.v), rest(in.theta), rest(in.alpha), rest(in.eta), s, spec);
  };
  const auto [y_want, want] = call(memory_dual);
  for (auto [engine, kernel] : kEngines) {
    const auto [y, got] = call(kernel);
    const std::string at = std::string(engine) + " ";
    testing::expect_close(at + "y", y_want, y, 1e-10);
    ASSERT_EQ(want.tau, got.tau);
    for (size_t l = 0; l < want.weights.size(); ++l) {
      testing::expect_close(at + "W end", want.weights[l], got.weights[l], 1e-10);
      testing::expect_close(at + "S end", want.momentum[l], got.momentum[l], 1e-10);
      testing::expect_close(at + "anchor end", want.anchor[l], got.anchor[l], 1e-10);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, FusedMemory,
    ::testing::Values(FusedCase{13, 4, 2, MemoryActivation::gelu_tanh, true, 0, 0},    // a partial last chunk
                      FusedCase{12, 4, 2, MemoryActivation::silu, true, 0, 0},         // whole chunks
                      FusedCase{13, 16, 2, MemoryActivation::gelu_tanh, true, 0, 0},   // one chunk longer than N
                      FusedCase{13, 1, 2, MemoryActivation::gelu_tanh, true, 0, 0},    // the online recurrence
                      FusedCase{17, 5, 1, MemoryActivation::silu, false, 0, 0},        // linear memory, read before
                      FusedCase{17, 4, 3, MemoryActivation::gelu_tanh, false, 0, 0},   // three layers
                      FusedCase{17, 4, 2, MemoryActivation::gelu_tanh, true, 0.3, 0},  // the clamp
                      FusedCase{15, 4, 3, MemoryActivation::silu, false, 0.3, 0},
                      FusedCase{17, 6, 2, MemoryActivation::gelu_tanh, true, 0.3, 2},  // starts inside a chunk
                      FusedCase{9, 6, 2, MemoryActivation::silu, true, 0, 4}),
    [](const auto& info) {
      const FusedCase& c = info.param;
      return fmt::format("N{}_b{}_L{}_{}{}{}{}", c.N, c.chunk, c.layers, c.act == MemoryActivation::silu ? "silu" : "gelu",
                         c.after ? "" : "_read_before", c.max_grad_norm > 0 ? "_clamped" : "",
                         c.tau > 0 ? fmt::format("_tau{}", c.tau) : "");
    });

TEST(FusedMemoryKernel, RefusesADoubleBackwardInsteadOfDroppingIt) {
  at::manual_seed(6);
  Inputs in = random_inputs(8, 2);
  in.q.requires_grad_();
  MemorySpec spec;
  spec.chunk = 4;
  const MemoryState s = start(in, false);
  for (auto [engine, kernel] : kEngines) {
    const at::Tensor y = kernel(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s, spec).first;
    EXPECT_THROW(torch::autograd::grad({y.pow(2).sum()}, {in.q}, {}, true, /*create_graph=*/true), c10::Error)
        << engine;
    const at::Tensor y2 = kernel(in.q, in.k, in.v, in.theta, in.alpha, in.eta, s, spec).first;
    EXPECT_NO_THROW(torch::autograd::grad({y2.pow(2).sum()}, {in.q})) << engine;
  }
}

TEST(FusedMemoryKernel, MismatchedShapesAreRefusedBeforeAnyRawLoopRuns) {
  const Inputs in = random_inputs(8, 2);
  MemorySpec spec;
  spec.chunk = 4;
  const MemoryState s = start(in, false);
  auto error = [&](const at::Tensor& k, const at::Tensor& v, const MemoryState& st) {
    try {
      memory_fused(in.q, k, v, in.theta, in.alpha, in.eta, st, spec);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_NE(error(in.k.narrow(2, 0, 7), in.v, s).find("k has shape"), std::string::npos);
  EXPECT_NE(error(in.k, in.v.narrow(3, 0, 3), s).find("v has shape"), std::string::npos);
  MemoryState one_batch = initial_memory_state(in.w0, 1, at::kDouble);  // memory_dual would broadcast it
  EXPECT_NE(error(in.k, in.v, one_batch).find("weights must be"), std::string::npos);
  MemoryState no_s = s;
  no_s.momentum.pop_back();
  EXPECT_NE(error(in.k, in.v, no_s).find("W and S"), std::string::npos);
  EXPECT_EQ(error(in.k, in.v, s), "no error");
}

TEST(FusedMemoryKernel, TheKernelChoiceNamesItsImplementation) {
  EXPECT_EQ(memory_kernel("auto", false), &memory_fused);
  EXPECT_EQ(memory_kernel("fused", false), &memory_fused);
  EXPECT_EQ(memory_kernel("auto", true), memory_cuda_validated() ? &memory_fused : &memory_dual);
  EXPECT_EQ(memory_kernel("chunked", false), &memory_dual);
  EXPECT_EQ(memory_kernel("reference", false), &memory_reference);
  EXPECT_EQ(memory_kernel("fused", true), &memory_fused);  // the batched engine there
  EXPECT_THROW(memory_kernel("fast", false), c10::Error);
}

}  // namespace
}  // namespace attnlab::kernels
