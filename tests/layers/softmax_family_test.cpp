// The identities that tie the softmax-family mixers to the baseline and to their definitions
// (docs/mixers/{swa,sigmoid,dma,moh}.md): swa with a window past T, DMA with a keep window past
// T and A = 0, and MoH with zero routers and every head active all equal softmax attention with
// the same weights; DMA's key intervals keep each row's top-w keys (min(w, i + 1) of them; ties,
// documents and shards) exactly as a row-by-row oracle picks them; MoH gates sum as defined and its
// load-balance loss is k at perfect balance, reaches the router, and moves with its weight;
// sigmoid's bias is −ln n.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/init.h>

#include "framework/config/run_config.h"
#include "kernels/attention/reference.h"
#include "layers/dma/dma.h"
#include "layers/dma/top_keys.h"
#include "layers/moh/moh.h"
#include "layers/sigmoid/sigmoid_attention.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

constexpr int64_t kDim = 32, kT = 41;

std::shared_ptr<Mixer> make(const std::string& type, const std::string& options, int64_t max_len = 256) {
  const MixerSpec spec = mixer_spec(type, options);
  auto m = MixerRegistry::instance().find(type)->create(*spec.options, MixerShape{kDim, 0, 2, max_len});
  m->to(at::kDouble);
  return m;
}

at::Tensor run(Mixer& m, const at::Tensor& x) { return m.forward(x, kernel_context("fused")); }

TEST(SoftmaxFamily, SwaWithAWindowPastTheSequenceIsSoftmax) {
  at::manual_seed(1);
  auto base = make("softmax", "{kv_heads: 2}"), swa = make("swa", "{kv_heads: 2, window: 64, sinks: 3}");
  testing::copy_parameters(*base, *swa);
  at::Tensor x = at::randn({2, kT, kDim}, at::kDouble);
  testing::expect_close("swa window > T", run(*base, x), run(*swa, x), 1e-10);
  auto short_window = make("swa", "{kv_heads: 2, window: 8}");
  testing::copy_parameters(*base, *short_window);
  EXPECT_GT(testing::rel_rms(run(*base, x), run(*short_window, x)), 1e-3);  // the window does act
}

TEST(SoftmaxFamily, DmaWithEverythingKeptAndZeroAIsSoftmax) {
  at::manual_seed(2);
  auto base = make("softmax", "{}"), dma = make("dma", "{keep_window: 64}");
  testing::copy_parameters(*base, *dma);
  at::Tensor x = at::randn({2, kT, kDim}, at::kDouble);
  testing::expect_close("dma, A = 0, w > T", run(*base, x), run(*dma, x), 1e-10);
  // A ≠ 0: the per-key bias changes the output, and A gets a gradient even at A = 0.
  auto& d = static_cast<layers::DynamicMaskAttention&>(*dma);
  run(*dma, x).pow(2).sum().backward();
  EXPECT_GT(d.A.grad().abs().sum().item<double>(), 0);
  {
    torch::NoGradGuard ng;
    d.A.fill_(0.7);
  }
  EXPECT_GT(testing::rel_rms(run(*base, x), run(*dma, x)), 1e-4);
}

/// DMA's rule written out row by row, the oracle: query i keeps the w keys of largest δ among
/// those it sees, ties to the most recent (later position).
at::Tensor top_w_per_row(const at::Tensor& bias, const kernels::AttentionSpec& spec, int64_t Tq, int64_t w) {
  const int64_t B = bias.size(0), G = bias.size(1), Tk = bias.size(2);
  const at::Tensor vis = kernels::attention_visibility(spec, B, 1, 1, Tq, Tk, bias.device()).expand({B, 1, Tq, Tk});
  const at::Tensor kpos = spec.k_pos.defined() ? spec.k_pos : at::arange(Tk, at::kLong);
  at::Tensor keep = at::zeros({B, G, Tq, Tk}, at::kBool);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t i = 0; i < Tq; ++i) {
        std::vector<int64_t> seen;
        for (int64_t j = 0; j < Tk; ++j)
          if (vis[b][0][i][j].item<bool>()) seen.push_back(j);
        std::sort(seen.begin(), seen.end(), [&](int64_t x, int64_t y) {
          const double bx = bias[b][g][x].item<double>(), by = bias[b][g][y].item<double>();
          return bx != by ? bx > by : kpos[x].item<int64_t>() > kpos[y].item<int64_t>();
        });
        for (size_t r = 0; r < seen.size() && static_cast<int64_t>(r) < w; ++r) keep[b][g][i][seen[r]] = true;
      }
  return keep;
}

/// The keys each query sees with DMA's interval form of the mask.
at::Tensor dma_visibility(const layers::DynamicMaskAttention& d, const at::Tensor& bias, kernels::AttentionSpec spec,
                          int64_t Tq) {
  spec.key_until = layers::top_keys_until(bias, spec, d.keep_window());
  const int64_t G = bias.size(1);
  return kernels::attention_visibility(spec, bias.size(0), G, G, Tq, bias.size(2), bias.device())
      .expand({bias.size(0), G, Tq, bias.size(2)});
}

TEST(SoftmaxFamily, DmaKeyIntervalsKeepEachRowsTopWKeys) {
  auto dma = make("dma", "{keep_window: 5}");
  const auto& d = static_cast<const layers::DynamicMaskAttention&>(*dma);
  at::manual_seed(11);
  const int64_t T = 29;
  kernels::AttentionSpec plain;
  const at::Tensor bias = at::randn({2, 4, T}, at::kDouble);
  at::Tensor vis = dma_visibility(d, bias, plain, T);
  for (int64_t i = 0; i < T; ++i)
    EXPECT_TRUE(vis.select(2, i).sum(-1).eq(std::min<int64_t>(5, i + 1)).all().item<bool>()) << "row " << i;
  EXPECT_TRUE(vis.equal(top_w_per_row(bias, plain, T, 5)));
  // Many ties (δ rounded to one of 3 values, all equal): the most recent keys win them.
  for (const at::Tensor& b : {(bias * 1.5).round(), at::zeros_like(bias)})
    EXPECT_TRUE(dma_visibility(d, b, plain, T).equal(top_w_per_row(b, plain, T, 5)));
  // Packed documents: each document's rows pick among its own keys.
  kernels::AttentionSpec docs;
  docs.q_doc = docs.k_doc = (at::rand({2, T}) < 0.15).to(at::kLong).cumsum(1);
  EXPECT_TRUE(dma_visibility(d, bias, docs, T).equal(top_w_per_row(bias, docs, T, 5)));
  // A shard's queries (positions 19..28) over every key, as context parallelism calls it.
  kernels::AttentionSpec shard;
  shard.q_pos = at::arange(10, at::kLong) + 19;
  EXPECT_TRUE(dma_visibility(d, bias, shard, 10).equal(top_w_per_row(bias, shard, 10, 5)));
  // No query with more than w keys: no bound at all.
  EXPECT_FALSE(layers::top_keys_until(bias, plain, 29).defined());
  EXPECT_TRUE(layers::top_keys_until(bias, plain, 28).defined());
}

TEST(SoftmaxFamily, MohWithZeroRoutersAndEveryHeadActiveIsSoftmax) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, kT, kDim}, at::kDouble);
  auto base = make("softmax", "{}");
  for (const char* opts : {"{shared_heads: 2, top_k: 2}", "{shared_heads: 0, top_k: 4}", "{shared_heads: 4, top_k: 0}",
                           "{shared_heads: 1, top_k: 3}"}) {
    auto moh = make("moh", opts);
    testing::copy_parameters(*base, *moh);
    {
      torch::NoGradGuard ng;
      for (auto& p : moh->named_parameters())
        if (p.key().rfind("router", 0) == 0) p.value().zero_();
    }
    testing::expect_close(std::string("moh ") + opts, run(*base, x), run(*moh, x), 1e-10);
  }
  // With a real router and 75% of the heads active the output differs.
  auto sparse = make("moh", "{shared_heads: 2, top_k: 1}");
  testing::copy_parameters(*base, *sparse);
  EXPECT_GT(testing::rel_rms(run(*base, x), run(*sparse, x)), 1e-3);
}

TEST(SoftmaxFamily, MohBalanceLossIsKAtBalanceReachesTheRouterAndMovesWithItsWeight) {
  at::manual_seed(4);
  at::Tensor x = at::randn({2, kT, kDim}, at::kDouble);
  auto zero = make("moh", "{shared_heads: 0, top_k: 2}");
  {
    torch::NoGradGuard ng;
    for (auto& p : zero->named_parameters())
      if (p.key().rfind("router", 0) == 0) p.value().zero_();
  }
  zero->forward(x, kernel_context("fused", /*training=*/true));
  auto aux = zero->aux_losses();
  ASSERT_EQ(aux.size(), 1u);
  EXPECT_EQ(aux[0].name, "moh_balance");
  // Uniform p = 1/4 and ties to the lowest index (heads 0 and 1 for every token): E·Σ P f = 4·(2·¼·1)
  // = 2 = k, divided by the model's 2 layers.
  EXPECT_NEAR(aux[0].value.item<double>(), 2.0 / 2, 1e-12);
  // Training with a large balance weight moves the router towards balance; weight 0 does not.
  auto train = [&](double weight) {
    auto m = make("moh", "{shared_heads: 0, top_k: 1}");
    std::vector<double> values;
    for (int s = 0; s < 30; ++s) {
      m->zero_grad();
      at::Tensor y = m->forward(x, kernel_context("fused", true));
      at::Tensor b = m->aux_losses()[0].value;
      (y.pow(2).mean() * 0 + weight * b).backward();
      torch::NoGradGuard ng;
      for (auto& p : m->parameters())
        if (p.grad().defined()) p.sub_(p.grad() * 0.5);
      values.push_back(b.item<double>());
    }
    return values;
  };
  const auto off = train(0.0), on = train(10.0);
  EXPECT_EQ(off.front(), off.back());
  EXPECT_LT(on.back(), on.front() - 1e-3);
}

TEST(SoftmaxFamily, SigmoidBiasIsMinusLogN) {
  auto by_len = make("sigmoid", "{}", /*max_len=*/2048);
  EXPECT_NEAR(static_cast<layers::SigmoidAttention&>(*by_len).bias(), -7.6246189861593985, 1e-12);
  auto fixed = make("sigmoid", "{bias_n: 1}");
  EXPECT_EQ(static_cast<layers::SigmoidAttention&>(*fixed).bias(), 0.0);
}

}  // namespace
}  // namespace attnlab
