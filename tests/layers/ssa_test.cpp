// SSA (docs/mixers/ssa.md): the block selection's invariants (own block always, no future
// block, at most S, exact top-S by the group-summed block softmax), a budget covering the
// sequence makes the sparse stream the full one (and the alignment loss and its gradient 0),
// a small budget makes them differ, and the training stream is drawn from the seeded RNG.
#include <ATen/ops/arange.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "framework/config/run_config.h"
#include "layers/ssa/block_selection.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

constexpr int64_t kDim = 32;

std::shared_ptr<Mixer> make(const std::string& options) {
  const MixerSpec spec = mixer_spec("ssa", options);
  auto m = MixerRegistry::instance().find("ssa")->create(*spec.options, MixerShape{kDim, 0, 2, 256});
  m->to(at::kDouble);
  return m;
}

TEST(Ssa, SelectionKeepsTheOwnBlockNoFutureBlockAndTheTopS) {
  at::manual_seed(11);
  const int64_t T = 70, Bs = 4, S = 3, G = 2;
  at::Tensor q = at::randn({1, 2 * G, T, 8}, at::kDouble), k = at::randn({1, 2, T, 8}, at::kDouble);
  at::Tensor keep = layers::select_blocks(q, k, at::arange(T, at::kLong), 0.35, Bs, S);  // [1, 2, T, 18]
  ASSERT_EQ(keep.size(3), (T + Bs - 1) / Bs);
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor row = keep[0][1][t];
    EXPECT_TRUE(row[t / Bs].item<bool>()) << "own block of " << t;
    EXPECT_FALSE(row.narrow(0, t / Bs + 1, row.size(0) - t / Bs - 1).any().item<bool>()) << "future at " << t;
    EXPECT_EQ(row.sum().item<int64_t>(), std::min<int64_t>(S, t / Bs + 1)) << "row " << t;
  }
  // Row t = 69: the two past blocks kept score highest under the group's summed softmax.
  const int64_t t = 69, own = t / Bs, complete = (t + 1) / Bs;
  at::Tensor kbar = k[0][1].narrow(0, 0, complete * Bs).view({complete, Bs, 8}).mean(1);
  at::Tensor score = at::zeros({complete}, at::kDouble);
  for (int64_t h = G; h < 2 * G; ++h) score += at::softmax(at::matmul(kbar, q[0][h][t]) * 0.35, 0);
  at::Tensor past = score.narrow(0, 0, own), kept = keep[0][1][t].narrow(0, 0, own);
  EXPECT_GE(past.masked_select(kept).min().item<double>(), past.masked_select(kept.logical_not()).max().item<double>());
}

TEST(Ssa, ABudgetCoveringTheSequenceMakesSparseEqualFull) {
  at::manual_seed(12);
  at::Tensor x = at::randn({2, 37, kDim}, at::kDouble);
  auto sparse = make("{block_size: 4, block_count: 10, inference: sparse}");  // 40 >= 37 keys
  auto full = make("{block_size: 4, block_count: 10, inference: full}");
  testing::copy_parameters(*sparse, *full);
  testing::expect_close("budget >= T", full->forward(x, kernel_context("fused")),
                        sparse->forward(x, kernel_context("fused")), 1e-10);
  sparse->forward(x, kernel_context("fused", /*training=*/true));
  const auto aux = sparse->aux_losses();
  ASSERT_EQ(aux.size(), 1u);
  EXPECT_LT(aux[0].value.item<double>(), 1e-20);
  auto small = make("{block_size: 4, block_count: 2, inference: sparse}");
  testing::copy_parameters(*sparse, *small);
  EXPECT_GT(testing::rel_rms(full->forward(x, kernel_context("fused")), small->forward(x, kernel_context("fused"))),
            1e-3);
  small->forward(x, kernel_context("fused", true));
  EXPECT_GT(small->aux_losses()[0].value.item<double>(), 1e-6);
}

TEST(Ssa, TheTrainingStreamIsDrawnFromTheSeededRng) {
  at::Tensor x = at::randn({1, 37, kDim}, at::kDouble);
  auto m = make("{block_size: 4, block_count: 2}");
  auto draws = [&] {
    at::manual_seed(5);
    std::vector<at::Tensor> ys;
    for (int i = 0; i < 12; ++i) ys.push_back(m->forward(x, kernel_context("fused", true)).detach());
    return ys;
  };
  const auto a = draws(), b = draws();
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    testing::expect_close("same seed, call " + std::to_string(i), a[i], b[i], 0);
    differ += testing::rel_rms(a[0], a[i]) > 1e-6;
  }
  EXPECT_GT(differ, 0);                              // both streams occur ...
  EXPECT_LT(differ, static_cast<int>(a.size()) - 1);  // ... and neither always
}

}  // namespace
}  // namespace attnlab
