// The identities that tie the softmax-family mixers to the baseline and to their definitions
// (docs/mixers/{swa,sigmoid,dma,moh}.md): swa with a window past T, DMA with a keep window past
// T and A = 0, and MoH with zero routers and every head active all equal softmax attention with
// the same weights; DMA rows keep exactly min(w, i + 1) keys; MoH gates sum as defined and its
// load-balance loss is k at perfect balance, reaches the router, and moves with its weight;
// sigmoid's bias is −ln n.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/init.h>

#include "framework/config/run_config.h"
#include "kernels/attention/reference.h"
#include "layers/dma/dma.h"
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

TEST(SoftmaxFamily, DmaRowsKeepMinOfWindowAndTheirCausalKeys) {
  auto dma = make("dma", "{keep_window: 5}");
  auto& d = static_cast<layers::DynamicMaskAttention&>(*dma);
  kernels::AttentionSpec spec;
  at::Tensor bias = at::randn({2, 4, 13}, at::kDouble);
  at::Tensor keep = d.keep_mask(bias, spec, 13);  // [B, Hkv, Tq, Tk]
  ASSERT_TRUE(keep.defined());
  for (int64_t i = 0; i < 13; ++i)
    EXPECT_TRUE(keep.select(2, i).sum(-1).eq(std::min<int64_t>(5, i + 1)).all().item<bool>()) << "row " << i;
  // The kept keys of a full row are its top-5 biases among keys <= i.
  at::Tensor row = bias[0][0].narrow(0, 0, 13);
  at::Tensor kept = row.masked_select(keep[0][0][12]);
  EXPECT_NEAR(kept.min().item<double>(), std::get<0>(row.topk(5)).min().item<double>(), 0);
  // Equal biases: ties go to the most recent keys.
  at::Tensor flat = d.keep_mask(at::zeros({1, 4, 13}, at::kDouble), spec, 13);
  EXPECT_TRUE(flat[0][0][12].narrow(0, 8, 5).all().item<bool>());
  // No query with more than w keys: no mask at all.
  auto wide = make("dma", "{keep_window: 13}");
  EXPECT_FALSE(static_cast<layers::DynamicMaskAttention&>(*wide).keep_mask(bias, spec, 13).defined());
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
