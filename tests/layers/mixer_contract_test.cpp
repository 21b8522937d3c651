// The mixer contract, checked for EVERY registered mixer (new mixers get these for free):
// shapes and dtype, causality, token-by-token decoding == parallel forward, finite gradients
// for input and all parameters, kernel choices agree, options survive a YAML round trip;
// also for the option variants of tests/common/mixer_variants.h.
#include <ATen/ops/randn.h>
#include <ATen/ops/isfinite.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <map>

#include "framework/config/run_config.h"
#include "framework/model/mixer.h"
#include "tests/common/mixer_variants.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

constexpr int64_t kDim = 32;

using testing::MixerVariant;

std::shared_ptr<Mixer> make_mixer(const MixerVariant& variant, int64_t layer = 0) {
  const MixerSpec spec = variant.spec();
  auto m = MixerRegistry::instance().find(spec.type)->create(*spec.options, MixerShape{kDim, layer, 2, 256});
  m->to(at::kDouble);
  return m;
}

class MixerContract : public ::testing::TestWithParam<MixerVariant> {
 protected:
  void SetUp() override { at::manual_seed(0); }
};

TEST_P(MixerContract, ShapeAndDtype) {
  auto m = make_mixer(GetParam());
  at::Tensor x = at::randn({3, 17, kDim}, at::kDouble);
  at::Tensor y = m->forward(x, {});
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), at::kDouble);
}

TEST_P(MixerContract, InitParametersSetsEveryParameterItRegistered) {
  // docs/model.md, "Parameter init": a mixer initialises all of its own parameters. Poison them
  // first, so one it forgets stays NaN; biases start at zero; matrices are drawn at the input or
  // the residual scale (torch's default uniform init would be ~5x wider at this width).
  auto m = make_mixer(GetParam());
  {
    at::NoGradGuard ng;
    for (auto& p : m->parameters()) p.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  const InitScales scales{0.02, 0.005};
  m->init_parameters(scales);
  // Parameters whose init the mixer's note documents as something else (they must still be set).
  const std::map<std::string, std::vector<std::string>> documented{
      {"titans", {"theta_proj.bias", "alpha_proj.bias", "eta_proj.bias", "memory_", "conv_", "persistent"}}};
  auto is_documented = [&](const std::string& name) {
    auto it = documented.find(GetParam().type);
    if (it == documented.end()) return false;
    for (const std::string& prefix : it->second)
      if (name.rfind(prefix, 0) == 0) return true;
    return false;
  };
  for (const auto& item : m->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& p = item.value();
    ASSERT_TRUE(at::isfinite(p).all().item<bool>()) << name << " was not initialised";
    if (is_documented(name)) continue;
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
      EXPECT_EQ(p.abs().max().item<double>(), 0.0) << name << ": biases start at zero";
    }
    if (p.dim() == 2 && p.numel() >= 64) {
      const double sd = p.std().item<double>();
      const bool input_scale = sd > 0.6 * scales.std && sd < 1.4 * scales.std;
      const bool residual_scale = sd > 0.6 * scales.residual_std && sd < 1.4 * scales.residual_std;
      EXPECT_TRUE(input_scale || residual_scale) << name << ": std " << sd;
      if (name == "o_proj.weight") {
        EXPECT_TRUE(residual_scale) << name << " writes into the residual stream";
      }
    }
  }
}

TEST_P(MixerContract, IsCausal) {
  auto m = make_mixer(GetParam());
  at::NoGradGuard ng;
  at::Tensor x = at::randn({2, 33, kDim}, at::kDouble);
  at::Tensor y = m->forward(x, {});
  for (int64_t t : {0, 7, 31}) {
    at::Tensor x2 = x.clone();
    x2.narrow(1, t + 1, 33 - t - 1).copy_(at::randn({2, 33 - t - 1, kDim}, at::kDouble));
    at::Tensor y2 = m->forward(x2, {});
    testing::expect_close("prefix up to t=" + std::to_string(t), y.narrow(1, 0, t + 1),
                          y2.narrow(1, 0, t + 1), 1e-12);
    // ... and the change must be visible after t (the check above could pass trivially).
    EXPECT_GT(testing::rel_rms(y.narrow(1, t + 1, 1), y2.narrow(1, t + 1, 1)), 1e-6);
  }
}

TEST_P(MixerContract, DecodeEqualsForward) {
  auto m = make_mixer(GetParam(), /*layer=*/1);
  at::NoGradGuard ng;
  const int64_t B = 2, T = 23;
  at::Tensor x = at::randn({B, T, kDim}, at::kDouble);
  at::Tensor y = m->forward(x, {});
  testing::expect_close("decode vs forward", y, testing::decode_token_by_token(*m, x), 1e-10);
}

TEST_P(MixerContract, BackwardGivesFiniteGradients) {
  auto m = make_mixer(GetParam());
  at::Tensor x = at::randn({2, 19, kDim}, at::kDouble).requires_grad_(true);
  m->forward(x, {}).pow(2).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0);
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST_P(MixerContract, KernelChoicesAgree) {
  auto m = make_mixer(GetParam());
  at::NoGradGuard ng;
  at::Tensor x = at::randn({2, 29, kDim}, at::kDouble);
  at::Tensor ref = m->forward(x, kernel_context("reference", false));
  for (const char* k : {"auto", "chunked", "fused"})
    testing::expect_close(std::string("kernel ") + k, ref, m->forward(x, kernel_context(k, false)), 1e-10);
}

TEST_P(MixerContract, OptionsRoundTrip) {
  auto opts = GetParam().spec().options;
  YAML::Emitter out;
  out << YAML::BeginMap;
  EmitVisitor ev(out);
  opts->emit(ev);
  out << YAML::EndMap;
  const std::string first = out.c_str();
  std::vector<std::string> errors;
  YamlSource src = load_yaml_text(first, "<emitted>");
  ParseVisitor pv(src, src.root, "model.mixer", errors);
  auto again = MixerRegistry::instance().find(GetParam().type)->parse(pv);
  pv.finish();
  ASSERT_TRUE(errors.empty()) << errors.front();
  YAML::Emitter out2;
  out2 << YAML::BeginMap;
  EmitVisitor ev2(out2);
  again->emit(ev2);
  out2 << YAML::EndMap;
  EXPECT_EQ(first, std::string(out2.c_str()));
}

TEST_P(MixerContract, RejectsUnknownOption) {
  std::vector<std::string> errors;
  YamlSource src = load_yaml_text("no_such_option: 3\n", "bad.yaml");
  ParseVisitor v(src, src.root, "model.mixer", errors);
  MixerRegistry::instance().find(GetParam().type)->parse(v);
  v.finish();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("model.mixer.no_such_option: unknown key"), std::string::npos) << errors[0];
}

INSTANTIATE_TEST_SUITE_P(AllMixers, MixerContract,
                         ::testing::ValuesIn(testing::contract_variants()),
                         [](const auto& info) { return testing::variant_test_name(info.param); });

TEST(MixerRegistry, DocumentedMixersResolve) {
  // Every configs/mixers/<name>.yaml names a registered mixer (registrars not dropped).
  for (const auto& e : std::filesystem::directory_iterator(ATTNLAB_SOURCE_DIR "/configs/mixers")) {
    YAML::Node n = YAML::LoadFile(e.path().string());
    const std::string type = n["model"]["mixer"]["type"].as<std::string>();
    EXPECT_NE(MixerRegistry::instance().find(type), nullptr) << e.path() << " names " << type;
  }
  EXPECT_NE(MixerRegistry::instance().find("softmax"), nullptr);
}

}  // namespace
}  // namespace attnlab
