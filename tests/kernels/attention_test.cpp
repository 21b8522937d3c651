// The tiled CPU softmax attention kernel (kernels/attention/fused_cpu.h) against the plain
// reference in fp64, forward and all three gradients, on sizes that are not tile multiples,
// with GQA and MQA, queries fewer than keys (decode-like, bottom-right alignment) and more
// (rows that see no key); fp32 to 1e-5.
#include <ATen/ops/randn.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/attention/fused_cpu.h"
#include "kernels/attention/reference.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

void check(int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk, int64_t d, at::ScalarType dt, double tol) {
  at::manual_seed(Tq * 131 + Tk);
  auto leaf = [&](std::vector<int64_t> shape) { return at::randn(shape, dt).requires_grad_(true); };
  at::Tensor q = leaf({B, H, Tq, d}), k = leaf({B, Hkv, Tk, d}), v = leaf({B, Hkv, Tk, d});
  at::Tensor w = at::randn({B, H, Tq, d}, dt);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor want = kernels::causal_attention_reference(q, k, v, scale);
  at::Tensor got = kernels::causal_attention_fused(q, k, v, scale);
  auto gw = torch::autograd::grad({(want * w).sum()}, {q, k, v});
  auto gg = torch::autograd::grad({(got * w).sum()}, {q, k, v});
  const std::string tag = fmt::format("B{} H{}/{} Tq{} Tk{} d{} {}", B, H, Hkv, Tq, Tk, d, c10::toString(dt));
  testing::expect_close(tag + " output", got, want, tol);
  testing::expect_close(tag + " dq", gg[0], gw[0], tol);
  testing::expect_close(tag + " dk", gg[1], gw[1], tol);
  testing::expect_close(tag + " dv", gg[2], gw[2], tol);
}

TEST(FusedAttention, MatchesTheReferenceOnAwkwardShapes) {
  check(2, 4, 4, 70, 70, 24, at::kDouble, 1e-10);    // MHA, ragged last tile
  check(1, 4, 2, 130, 130, 16, at::kDouble, 1e-10);  // GQA over three tiles
  check(2, 3, 1, 37, 37, 8, at::kDouble, 1e-10);     // MQA, one partial tile
  check(1, 2, 1, 5, 80, 12, at::kDouble, 1e-10);     // few queries over a long cache
  check(1, 2, 2, 50, 20, 8, at::kDouble, 1e-10);     // the first 30 queries see no key
  check(2, 4, 2, 97, 97, 32, at::kFloat, 1e-5);
}

}  // namespace
}  // namespace attnlab
