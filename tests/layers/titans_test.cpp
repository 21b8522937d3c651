// The titans mixer (layers/titans; docs/mixers/titans.md) beyond the generic contract: its init
// avoids the zero-memory trap, the keys and values learn only through the inner gradient (the
// second-order path is live in the layer), the dual form and the token loop agree at the layer
// level, and the three architectures are different functions of the same input.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "framework/config/run_config.h"
#include "layers/titans/titans.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

std::shared_ptr<layers::Titans> make(const std::string& options) {
  MixerSpec spec = mixer_spec("titans", options);
  auto m = std::dynamic_pointer_cast<layers::Titans>(
      MixerRegistry::instance().find("titans")->create(*spec.options, MixerShape{32, 0, 2, 128}));
  m->init_parameters(InitScales{0.2, 0.1});
  m->to(at::kDouble);
  return m;
}

TEST(Titans, InitialMemoryIsNotZero) {
  auto m = make("{memory_layers: 3}");
  ASSERT_EQ(m->memory_init.size(), 3u);
  for (const at::Tensor& w : m->memory_init) {
    EXPECT_GT(w.abs().max().item<double>(), 0.0);
    EXPECT_NEAR(w.std().item<double>(), 1.0 / std::sqrt(static_cast<double>(w.size(1))), 0.3 / std::sqrt(static_cast<double>(w.size(1))));
  }
}

TEST(Titans, KeysAndValuesLearnThroughTheInnerGradient) {
  auto m = make("{chunk: 4}");
  const at::Tensor x = at::randn({2, 11, 32}, at::kDouble);
  const at::Tensor y = m->forward(x, kernel_context("auto", true));
  const auto g = torch::autograd::grad({(y * y).sum()}, {m->k_proj->weight, m->v_proj->weight, m->q_proj->weight});
  for (const at::Tensor& t : g) EXPECT_GT(t.abs().max().item<double>(), 1e-8);
}

TEST(Titans, DualFormAndTokenLoopAgreeInTheLayer) {
  for (const char* arch : {"lmm", "mag", "mal"}) {
    auto m = make(std::string("{chunk: 3, window: 5, architecture: ") + arch + "}");
    const at::Tensor x = at::randn({2, 10, 32}, at::kDouble);
    testing::expect_close(arch, m->forward(x, kernel_context("reference")), m->forward(x, kernel_context("auto")), 1e-10);
  }
}

TEST(Titans, ArchitecturesAreDifferentFunctions) {
  const at::Tensor x = at::randn({1, 9, 32}, at::kDouble);
  auto lmm = make("{architecture: lmm}"), mag = make("{architecture: mag}"), mal = make("{architecture: mal}");
  testing::copy_parameters(*lmm, *mag);  // the same memory weights, different compositions
  testing::copy_parameters(*lmm, *mal);
  const at::Tensor y = lmm->forward(x, {});
  testing::expect_close("memory branch", y, mag->memory_branch(x, {}), 1e-12);
  EXPECT_GT((mag->forward(x, {}) - y).abs().max().item<double>(), 1e-6);
  EXPECT_GT((mal->forward(x, {}) - y).abs().max().item<double>(), 1e-6);
  EXPECT_GT((mal->forward(x, {}) - mag->forward(x, {})).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace attnlab
