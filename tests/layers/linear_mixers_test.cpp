// Layer-level identities of the linear-attention mixers (the "Tests" sections of
// docs/mixers/{gla,lightning,hedgehog}.md): GLA's per-head norm makes it q-scale invariant,
// Lightning's decay schedules and buffer, Hedgehog's feature maps, normaliser and the LoLCATs
// window hybrid (blocked form == masked definition, w ≥ T == softmax attention, decode ==
// forward across evictions).
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/softmax.h>
#include <gtest/gtest.h>

#include <cmath>

#include <ATen/ops/exp.h>

#include "framework/config/run_config.h"
#include "framework/model/language_model.h"
#include "kernels/attention/reference.h"
#include "kernels/linear/api.h"
#include "layers/gla/gla.h"
#include "layers/hedgehog/hedgehog.h"
#include "layers/hedgehog/hybrid_attention.h"
#include "layers/lightning/decay_schedule.h"
#include "layers/lightning/lightning.h"
#include "tests/common/test_util.h"

namespace attnlab::layers {
namespace {
using testing::expect_close;

TEST(Gla, OutputIsInvariantToScalingQueries) {
  at::manual_seed(1);
  GlaOptions o;
  o.norm_eps = 0;  // the per-head RMSNorm cancels any positive scale on q exactly
  Gla m(o, MixerShape{32, 0, 2, 64});
  m.to(at::kDouble);
  at::NoGradGuard ng;
  at::Tensor x = at::randn({2, 21, 32}, at::kDouble);
  at::Tensor y = m.forward(x, {});
  m.q_proj->weight.mul_(3.7);
  expect_close("q scaled by 3.7", y, m.forward(x, {}), 1e-12);
}

TEST(Gla, ParameterCountAndInitialDecayFollowThePaper) {
  const int64_t d = 64;
  Gla m(GlaOptions{}, MixerShape{d, 0, 2, 64});
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  const int64_t Dk = d / 2, dv = d / 4;  // expand_k 0.5, expand_v 1, 4 heads
  EXPECT_EQ(n, 4 * d * d + 16 * d + 16 * Dk + Dk + dv);
}

TEST(Gla, InitialDecayOfTheBuiltModelIsHalfToTheOneOverTau) {
  // In a model built by LanguageModel (its init, not a bare module), the gate bias starts at
  // zero and the gate weights are small, so every channel decays by ≈ 0.5^(1/16) ≈ 0.9576 per
  // step (fla's init, τ = 16). Torch's default uniform bias init would spread the decays by
  // ±0.007.
  RunConfig cfg = parse_run_config(load_yaml_text("model: {dim: 64, layers: 2, mixer: gla}\n", "gla.yaml"));
  at::manual_seed(3);
  LanguageModel lm(cfg.model);
  auto gla = std::dynamic_pointer_cast<Gla>(lm->layers[0]->mixer);
  ASSERT_TRUE(gla);
  EXPECT_EQ(gla->gate_up->bias.abs().max().item<double>(), 0.0);
  at::NoGradGuard ng;
  at::Tensor x = at::randn({4, 16, 64});  // unit-scale inputs, as after the pre-norm
  at::Tensor decay = at::exp(gla->log_decay(x));  // what mix() hands the kernel
  const double expected = std::pow(0.5, 1.0 / 16);
  EXPECT_LT((decay - expected).abs().max().item<double>(), 2e-3) << "mean decay " << decay.mean().item<double>();
}

TEST(Gla, GroupedKeyValueHeadsDecodeEqualsForward) {
  at::manual_seed(2);
  GlaOptions o;
  o.heads = 4, o.kv_heads = 2, o.chunk_size = 8, o.sub_chunk = 4;
  Gla m(o, MixerShape{32, 0, 2, 64});
  m.to(at::kDouble);
  at::NoGradGuard ng;
  at::Tensor x = at::randn({2, 19, 32}, at::kDouble);
  expect_close("GQA decode", m.forward(x, {}), testing::decode_token_by_token(m, x), 1e-10);
}

TEST(Lightning, DecaySchedulesMatchTheirSources) {
  // official (HF TNL): −2^{−8(h+1)/H}·(1 − l/(L−1) + 1e-5); paper/fla: −(8h/H)(1 − l/L).
  for (int64_t H : {8, 12, 16}) {
    auto first = lightning_log_decay("official", H, 0, 24), last = lightning_log_decay("official", H, 23, 24);
    auto slopes = alibi_slopes(H);
    for (int64_t h = 0; h < H; ++h) {
      EXPECT_NEAR(first[h], -slopes[h] * (1 + 1e-5), 1e-15);
      EXPECT_NEAR(last[h], -slopes[h] * 1e-5, 1e-15);
    }
    auto paper = lightning_log_decay("paper", H, 0, 24);
    EXPECT_EQ(paper[0], 0.0) << "head 0 never decays in the literal paper formula";
    EXPECT_NEAR(paper[H - 1], -8.0 * (H - 1) / H, 1e-12);
    EXPECT_NEAR(lightning_log_decay("paper", H, 23, 24)[H - 1], -8.0 * (H - 1) / H / 24, 1e-12);
  }
  // H = 16: the table in docs/mixers/lightning.md (first layer λ from e^{−0.707} to e^{−0.0039}).
  auto h16 = lightning_log_decay("official", 16, 0, 24);
  EXPECT_NEAR(h16[0], -std::pow(2.0, -0.5) * (1 + 1e-5), 1e-12);
  EXPECT_NEAR(h16[15], -std::pow(2.0, -8.0) * (1 + 1e-5), 1e-12);
  // H = 12 uses ALiBi's interleaving: slopes of 8, then every other slope of 16.
  auto s12 = alibi_slopes(12);
  EXPECT_NEAR(s12[7], std::pow(2.0, -8.0), 1e-15);
  EXPECT_NEAR(s12[8], std::pow(2.0, -0.5), 1e-15);
  EXPECT_NEAR(s12[11], std::pow(2.0, -3.5), 1e-15);
  // Official: λ grows with head index (powers of two) and with depth.
  for (int64_t H : {8, 16}) {
    auto a = lightning_log_decay("official", H, 3, 24), b = lightning_log_decay("official", H, 9, 24);
    for (int64_t h = 0; h < H; ++h) {
      if (h > 0) {
        EXPECT_GT(a[h], a[h - 1]);
      }
      EXPECT_GT(b[h], a[h]);
    }
  }
}

TEST(Lightning, DecayIsABufferNotAParameter) {
  Lightning m(LightningOptions{}, MixerShape{32, 1, 4, 64});
  for (const auto& p : m.named_parameters()) EXPECT_EQ(p.key().find("decay"), std::string::npos) << p.key();
  ASSERT_NE(m.named_buffers().find("log_decay"), nullptr);
  EXPECT_FALSE(m.log_decay.requires_grad());
}

TEST(Lightning, KernelEqualsTheExplicitDecayMask) {
  // O = ((Q Kᵀ) ⊙ D) V with D_ts = λ^{t−s}, t ≥ s (the official torch reference's mask).
  at::manual_seed(3);
  const int64_t T = 70;
  at::Tensor q = at::randn({1, 2, T, 4}, at::kDouble), k = at::randn({1, 2, T, 4}, at::kDouble);
  at::Tensor v = at::randn({1, 2, T, 3}, at::kDouble);
  at::Tensor log_lambda = at::full({2}, -0.3, at::kDouble);
  log_lambda[1] = -0.01;
  at::Tensor t = at::arange(T, at::kDouble);
  at::Tensor dist = t.view({T, 1}) - t.view({1, T});  // t − s
  at::Tensor D = (dist.unsqueeze(0) * log_lambda.view({2, 1, 1})).exp() * (dist >= 0).to(at::kDouble);
  at::Tensor expected = at::matmul(at::matmul(q, k.transpose(2, 3)) * D, v);
  kernels::LinearAttentionOptions o;
  o.kernel = "fused";
  expect_close("lightning fused", expected, kernels::linear_attention(q, k, v, log_lambda, {}, o).out, 1e-12);
  // Feature splitting (the d > 128 path): the output is additive over slices of dk.
  auto part = [&](int64_t a, int64_t n) {
    return kernels::linear_attention(q.narrow(3, a, n), k.narrow(3, a, n), v, log_lambda, {}, o).out;
  };
  expect_close("feature split", expected, part(0, 1) + part(1, 3), 1e-12);
}

TEST(Hedgehog, IdentityFeatureMapIsTwoSoftmaxes) {
  at::manual_seed(4);
  HedgehogFeatureMap phi(2, 6, 3, "softmax_dim");
  at::Tensor x = at::randn({1, 2, 5, 6}, at::kDouble);
  phi->to(at::kDouble);
  at::Tensor f = phi->forward(x);
  ASSERT_EQ(f.size(-1), 6);
  EXPECT_TRUE((f > 0).all().item<bool>());
  at::Tensor head = x.narrow(-1, 0, 3);
  expect_close("identity phi", at::cat({at::softmax(head, -1), at::softmax(-head, -1)}, -1), f, 1e-14);
}

TEST(Hedgehog, NormaliserCancelsQuerySideScalesButNotKeySide) {
  at::manual_seed(5);
  at::Tensor pq = at::rand({1, 2, 30, 6}, at::kDouble) + 0.1, pk = at::rand({1, 2, 30, 6}, at::kDouble) + 0.1;
  at::Tensor v = at::randn({1, 2, 30, 4}, at::kDouble);
  at::Tensor c = at::rand({1, 2, 30, 1}, at::kDouble) * 5 + 0.1;  // a positive factor per token
  kernels::LinearAttentionOptions o;
  at::Tensor y = normalized_linear_attention(pq, pk, v, 0, kernel_runner(o));
  expect_close("phi(q) scaled per token", y, normalized_linear_attention(pq * c, pk, v, 0, kernel_runner(o)), 1e-12);
  EXPECT_GT(testing::rel_rms(y, normalized_linear_attention(pq, pk * c, v, 0, kernel_runner(o))), 1e-3)
      << "scaling phi(k) per token re-weights keys: a different model";
}

TEST(Hedgehog, BlockedHybridEqualsMaskedDefinition) {
  at::manual_seed(6);
  for (int64_t T : {1, 5, 37}) {
    for (int64_t w : {1, 4, 16}) {
      at::Tensor q = at::randn({2, 3, T, 4}, at::kDouble), k = at::randn({2, 3, T, 4}, at::kDouble);
      at::Tensor v = at::randn({2, 3, T, 5}, at::kDouble);
      at::Tensor pq = at::rand({2, 3, T, 6}, at::kDouble), pk = at::rand({2, 3, T, 6}, at::kDouble);
      at::Tensor gamma = at::rand({3}, at::kDouble);
      kernels::LinearAttentionOptions o;
      o.chunk_size = 8, o.sub_chunk = 4;
      expect_close("hybrid T=" + std::to_string(T) + " w=" + std::to_string(w),
                   sliding_window_hybrid_reference(q, k, v, pq, pk, gamma, w),
                   sliding_window_hybrid_attention(q, k, v, pq, pk, gamma, w, kernel_runner(o)), 1e-12);
    }
  }
}

TEST(Hedgehog, WindowCoveringTheSequenceIsSoftmaxAttention) {
  at::manual_seed(7);
  at::Tensor q = at::randn({1, 2, 20, 4}, at::kDouble), k = at::randn({1, 2, 20, 4}, at::kDouble);
  at::Tensor v = at::randn({1, 2, 20, 4}, at::kDouble);
  at::Tensor pq = at::rand({1, 2, 20, 8}, at::kDouble), pk = at::rand({1, 2, 20, 8}, at::kDouble);
  at::Tensor softmax = kernels::causal_attention_reference(q, k, v, 0.5);
  for (double g : {0.01, 0.5, 0.99}) {
    at::Tensor gamma = at::full({2}, g, at::kDouble);
    expect_close("w >= T", softmax, sliding_window_hybrid_attention(q, k, v, pq, pk, gamma, 20, kernel_runner({})), 1e-12);
  }
}

TEST(Hedgehog, HybridDecodeEqualsForwardAcrossEvictions) {
  at::manual_seed(8);
  for (const char* map : {"softmax_dim", "exp_dim", "joint_softmax"}) {
    HedgehogOptions o;
    o.window = 4, o.feature_map = map, o.chunk_size = 8, o.sub_chunk = 4;
    Hedgehog m(o, MixerShape{32, 0, 2, 64});
    m.to(at::kDouble);
    at::NoGradGuard ng;
    at::Tensor x = at::randn({2, 23, 32}, at::kDouble);  // prompts shorter and longer than w
    expect_close(std::string("hybrid decode ") + map, m.forward(x, {}),
                 testing::decode_token_by_token(m, x), 1e-10);
  }
}

}  // namespace
}  // namespace attnlab::layers
