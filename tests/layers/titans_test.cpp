// The titans mixer (layers/titans; docs/mixers/titans.md) beyond the generic contract: its init
// avoids the zero-memory trap, the keys and values learn only through the inner gradient (the
// second-order path is live in the layer), the dual form and the token loop agree at the layer
// level, the four architectures are different functions of the same input, persistent tokens are
// a learned prefix, and MAC's causally aligned retrieval does not leak while its prefix mode does.
#include <ATen/ops/cat.h>
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
  for (const char* arch : {"lmm", "mag", "mal", "mac"}) {
    auto m = make(std::string("{chunk: 3, window: 5, segment: 4, persistent: 2, architecture: ") + arch + "}");
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

TEST(Titans, MacDiffersFromMag) {
  const at::Tensor x = at::randn({1, 12, 32}, at::kDouble);
  auto mag = make("{architecture: mag, window: 64}"), mac = make("{architecture: mac, segment: 64}");
  testing::copy_parameters(*mag, *mac);  // same projections, attention and norms: only the wiring differs
  EXPECT_GT((mac->forward(x, {}) - mag->forward(x, {})).abs().max().item<double>(), 1e-6);
}

TEST(Titans, PersistentTokensAreALearnedPrefix) {
  // With P, the layer on x equals the layer without P on [P; x], minus P's outputs (for mag with
  // a window covering everything, so that P being a sink changes nothing).
  for (const char* arch : {"lmm", "mag", "mal"}) {
    const std::string common = std::string("{chunk: 3, window: 64, architecture: ") + arch;
    auto with = make(common + ", persistent: 3}"), without = make(common + "}");
    testing::copy_parameters(*with, *without);
    const at::Tensor x = at::randn({2, 10, 32}, at::kDouble);
    const at::Tensor prefixed = at::cat({with->persistent.unsqueeze(0).expand({2, 3, 32}), x}, 1);
    at::NoGradGuard ng;
    testing::expect_close(arch, without->forward(prefixed, {}).narrow(1, 3, 10), with->forward(x, {}), 1e-12);
    EXPECT_GT((without->forward(x, {}) - with->forward(x, {})).abs().max().item<double>(), 1e-6) << arch;
  }
}

TEST(Titans, MacPrefixRetrievalLeaksTheFutureCausalDoesNot) {
  // docs/mixers/titans.md, "MAC": with all of a segment's retrievals visible to all of its
  // tokens, token t sees h_s for s > t, which is computed from x_s.
  auto causal = make("{architecture: mac, segment: 8, chunk: 4, persistent: 2}");
  auto prefix = make("{architecture: mac, segment: 8, chunk: 4, persistent: 2, retrieval: prefix}");
  testing::copy_parameters(*causal, *prefix);
  at::NoGradGuard ng;
  const at::Tensor x = at::randn({2, 20, 32}, at::kDouble);
  at::Tensor x2 = x.clone();
  x2.narrow(1, 5, 1).add_(at::randn({2, 1, 32}, at::kDouble));  // a token in the middle of segment 0
  testing::expect_close("causal: tokens before 5", causal->forward(x, {}).narrow(1, 0, 5),
                        causal->forward(x2, {}).narrow(1, 0, 5), 1e-12);
  EXPECT_GT((prefix->forward(x, {}).narrow(1, 0, 5) - prefix->forward(x2, {}).narrow(1, 0, 5)).abs().max().item<double>(),
            1e-6)
      << "prefix mode must leak (else the causal check above proves nothing about the alignment)";
  auto state = prefix->init_state(2, 20);
  EXPECT_THROW(prefix->step(x.select(1, 0), *state), c10::Error);
}

}  // namespace
}  // namespace attnlab
