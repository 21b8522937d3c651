// softmax mixer specifics: SDPA path == plain reference (fp64) incl. GQA and MQA, RoPE's
// relative-position identity, parameter count, gradcheck of the reference at a tiny size.
#include <ATen/ops/randn.h>
#include <ATen/ops/sum.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "kernels/attention/reference.h"
#include "layers/common/rotary.h"
#include "layers/softmax/softmax_attention.h"
#include "tests/common/test_util.h"

namespace attnlab::layers {
namespace {

TEST(Softmax, SdpaMatchesReferenceForwardAndBackward) {
  at::manual_seed(1);
  for (int64_t kv : {4, 2, 1}) {  // MHA, GQA, MQA
    SoftmaxOptions o;
    o.heads = 4, o.kv_heads = kv;
    SoftmaxAttention m(o, MixerShape{48, 0, 1, 128});
    m.to(at::kDouble);
    at::Tensor x = at::randn({2, 63, 48}, at::kDouble).requires_grad_(true);
    at::Tensor y_ref = m.forward(x, kernel_context("reference", true));
    auto g_ref = torch::autograd::grad({y_ref.pow(2).sum()}, {x, m.q_proj->weight, m.k_proj->weight});
    at::Tensor y = m.forward(x, kernel_context("auto", true));
    auto g = torch::autograd::grad({y.pow(2).sum()}, {x, m.q_proj->weight, m.k_proj->weight});
    const std::string tag = "kv_heads=" + std::to_string(kv);
    testing::expect_close(tag + " y", y_ref, y, 1e-10);
    testing::expect_close(tag + " dx", g_ref[0], g[0], 1e-10);
    testing::expect_close(tag + " dWq", g_ref[1], g[1], 1e-10);
    testing::expect_close(tag + " dWk", g_ref[2], g[2], 1e-10);
  }
}

TEST(Softmax, ReferenceAttentionGradcheck) {
  at::manual_seed(2);
  at::Tensor q = at::randn({1, 2, 5, 4}, at::kDouble).requires_grad_(true),
             k = at::randn({1, 1, 5, 4}, at::kDouble).requires_grad_(true),
             v = at::randn({1, 1, 5, 4}, at::kDouble).requires_grad_(true);
  // Central differences against autograd for every input element.
  auto f = [&] { return kernels::causal_attention_reference(q, k, v, 0.5).pow(2).sum(); };
  auto grads = torch::autograd::grad({f()}, {q, k, v});
  at::NoGradGuard ng;
  at::Tensor inputs[] = {q, k, v};
  for (int i = 0; i < 3; ++i) {
    at::Tensor flat = inputs[i].view({-1});
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double h = 1e-6, orig = flat[j].item<double>();
      flat[j] = orig + h;
      const double up = f().item<double>();
      flat[j] = orig - h;
      const double down = f().item<double>();
      flat[j] = orig;
      EXPECT_NEAR(grads[i].view({-1})[j].item<double>(), (up - down) / (2 * h), 1e-6);
    }
  }
}

TEST(Rotary, DotProductDependsOnlyOnRelativePosition) {
  at::manual_seed(3);
  at::Tensor q = at::randn({1, 1, 1, 16}, at::kDouble), k = at::randn({1, 1, 1, 16}, at::kDouble);
  auto dot = [&](int64_t p, int64_t r) {
    return (apply_rotary(q, p, 10000) * apply_rotary(k, r, 10000)).sum().item<double>();
  };
  EXPECT_NEAR(dot(5, 2), dot(103, 100), 1e-10);
  EXPECT_NEAR(dot(0, 0), (q * k).sum().item<double>(), 1e-12);  // position 0 is the identity
  EXPECT_GT(std::abs(dot(5, 2) - dot(5, 4)), 1e-6);
}

TEST(Softmax, ParameterCount) {
  SoftmaxOptions o;
  o.heads = 8, o.kv_heads = 2;
  SoftmaxAttention m(o, MixerShape{64, 0, 1, 32});
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  EXPECT_EQ(n, 64 * 64 + 2 * 64 * 16 + 64 * 64);  // Wq, Wk+Wv (2 kv heads x 8), Wo
}

TEST(Softmax, RejectsIndivisibleHeads) {
  SoftmaxOptions o;
  o.heads = 6, o.kv_heads = 4;
  EXPECT_THROW(SoftmaxAttention(o, MixerShape{48, 0, 1, 32}), c10::Error);
}

}  // namespace
}  // namespace attnlab::layers
