// Blocks as data (framework/model/block.h, docs/model.md): every layout computes its formula
// from the block's own parts, layouts own exactly the norms they use, the built-in norms and
// MLPs match their definitions, learned positions restart per document and agree between
// forward and decoding, and a bad part name is a config error naming its YAML path.
#include <ATen/ops/allclose.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/erf.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros_like.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "framework/config/run_config.h"
#include "framework/model/documents.h"
#include "framework/model/language_model.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

RunConfig small(std::vector<std::string> sets) {
  for (const char* s : {"model.dim=32", "model.layers=2", "model.max_seq_len=64", "data.seq_len=32", "model.mixer.heads=2"})
    sets.emplace_back(s);
  return load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml", sets);
}

bool has_parameter(torch::nn::Module& m, const std::string& prefix) {
  for (const auto& p : m.named_parameters())
    if (p.key().rfind(prefix, 0) == 0) return true;
  return false;
}

struct LayoutCase {
  const char* layout;
  bool residual;
};

class Layouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(Layouts, ComputeTheirFormulaFromTheBlocksParts) {
  const LayoutCase c = GetParam();
  RunConfig cfg = small({std::string("model.block.layout=") + c.layout,
                         std::string("model.block.mixer_residual=") + (c.residual ? "true" : "false"),
                         "model.block.norm=layernorm", "model.block.mlp=gelu", "model.block.bias=true"});
  at::manual_seed(3);
  Block block(cfg.model, cfg.model.pattern[0], 0);
  block->to(at::kDouble);
  {
    // Non-trivial norm parameters, so a layout that skips or swaps a norm shows.
    at::NoGradGuard g;
    for (auto& p : block->named_parameters())
      if (p.key().find("layernorm") != std::string::npos) p.value().add_(at::randn_like(p.value()) * 0.3);
  }
  const at::Tensor x = at::randn({2, 7, 32}, at::kDouble);
  const MixerContext ctx = kernel_context("reference");
  auto mix = [&](const at::Tensor& in) { return block->mixer->forward(in, ctx); };
  auto res = [&](const at::Tensor& in, const at::Tensor& out) { return c.residual ? in + out : out; };
  Norm& n1 = *block->input_layernorm;
  Mlp& mlp = *block->mlp;
  at::Tensor want;
  if (std::string(c.layout) == "pre_norm") {
    at::Tensor h = res(x, mix(n1.forward(x)));
    want = h + mlp.forward(block->post_attention_layernorm->forward(h));
  } else if (std::string(c.layout) == "post_norm") {
    at::Tensor h = n1.forward(res(x, mix(x)));
    want = block->post_attention_layernorm->forward(h + mlp.forward(h));
  } else {
    at::Tensor n = n1.forward(x);
    want = res(x, mix(n)) + mlp.forward(n);
  }
  testing::expect_close(c.layout, want, block->forward(x, ctx), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(All, Layouts,
                         ::testing::Values(LayoutCase{"pre_norm", true}, LayoutCase{"pre_norm", false},
                                           LayoutCase{"post_norm", true}, LayoutCase{"post_norm", false},
                                           LayoutCase{"parallel", true}),
                         [](const auto& info) {
                           return std::string(info.param.layout) + (info.param.residual ? "" : "_no_residual");
                         });

TEST(Blocks, LayoutsOwnExactlyTheNormsTheyUse) {
  LanguageModel pre(small({}).model), post(small({"model.block.layout=post_norm"}).model),
      par(small({"model.block.layout=parallel"}).model);
  EXPECT_TRUE(has_parameter(*pre, "norm.") && has_parameter(*pre, "layers.0.post_attention_layernorm."));
  EXPECT_FALSE(has_parameter(*post, "norm."));  // every block's output is normalised already
  EXPECT_TRUE(has_parameter(*post, "layers.1.post_attention_layernorm."));
  EXPECT_TRUE(has_parameter(*par, "norm."));
  EXPECT_FALSE(has_parameter(*par, "layers.0.post_attention_layernorm."));
}

TEST(Blocks, NormsMatchTheirDefinitionsWithFp32Statistics) {
  RunConfig cfg = small({"model.block.norm=layernorm", "model.norm_eps=0.01"});
  Block block(cfg.model, cfg.model.pattern[0], 0);
  Norm& ln = *block->input_layernorm;
  at::Tensor x = at::randn({3, 5, 32}, at::kDouble) * 3 + 1;
  ln.to(at::kDouble);
  const at::Tensor mean = x.mean(-1, true), var = (x - mean).pow(2).mean(-1, true);
  testing::expect_close("layernorm", (x - mean) / (var + 0.01).sqrt(), ln.forward(x), 1e-12);
  // bf16 in, bf16 out, statistics not rounded to bf16 first.
  ln.to(at::kFloat);
  const at::Tensor xb = x.to(at::kBFloat16);
  const at::Tensor got = ln.forward(xb);
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  const at::Tensor xf = xb.to(at::kFloat), mf = xf.mean(-1, true);
  const at::Tensor want = ((xf - mf) / ((xf - mf).pow(2).mean(-1, true) + 0.01).sqrt()).to(at::kBFloat16);
  EXPECT_TRUE(at::allclose(got.to(at::kFloat), want.to(at::kFloat), 0, 1e-6));

  RunConfig rms = small({"model.norm_eps=0.01"});
  Block b2(rms.model, rms.model.pattern[0], 0);
  b2->to(at::kDouble);
  testing::expect_close("rmsnorm", x / (x.pow(2).mean(-1, true) + 0.01).sqrt(), b2->input_layernorm->forward(x), 1e-12);
}

TEST(Blocks, GeluMlpsMatchTheirDefinitions) {
  const at::Tensor x = at::randn({4, 32}, at::kDouble);
  at::Tensor out[2];
  for (int tanh_form = 0; tanh_form < 2; ++tanh_form) {
    RunConfig cfg = small({tanh_form ? "model.block.mlp=gelu_tanh" : "model.block.mlp=gelu", "model.block.bias=true"});
    EXPECT_EQ(cfg.model.resolved_mlp_hidden(), 4 * 32);  // two-matrix MLPs default to 4·D
    at::manual_seed(5);
    Block block(cfg.model, cfg.model.pattern[0], 0);
    block->to(at::kDouble);
    auto params = block->mlp->named_parameters();
    const at::Tensor W1 = params["up_proj.weight"], W2 = params["down_proj.weight"];
    const at::Tensor b1 = params["up_proj.bias"], b2 = params["down_proj.bias"];
    {
      at::NoGradGuard g;
      b1.normal_(), b2.normal_();  // non-zero biases, so a dropped one shows
    }
    const at::Tensor u = at::linear(x, W1, b1);
    const double c = std::sqrt(2.0 / M_PI);
    const at::Tensor g = tanh_form ? 0.5 * u * (1 + at::tanh(c * (u + 0.044715 * u.pow(3))))
                                   : 0.5 * u * (1 + at::erf(u / std::sqrt(2.0)));
    out[tanh_form] = block->mlp->forward(x);
    testing::expect_close(tanh_form ? "gelu_tanh" : "gelu", at::linear(g, W2, b2), out[tanh_form], 1e-12);
  }
  EXPECT_GT((out[0] - out[1]).abs().max().item<double>(), 1e-6);  // the two forms are not the same part
}

TEST(Blocks, LearnedPositionsDecodeLikeForwardAndRestartPerDocument) {
  RunConfig cfg = small({"model.positions=learned", "model.block.layout=post_norm", "model.block.norm=layernorm"});
  at::manual_seed(9);
  LanguageModel model(cfg.model);
  model->to(at::kDouble);
  ASSERT_TRUE(has_parameter(*model, "embed_positions.weight"));
  EXPECT_EQ(model->embed_positions->named_parameters()["weight"].size(0), 64);
  at::Tensor tokens = at::randint(1, 200, {2, 12}, at::kLong);
  const MixerContext ctx = kernel_context("reference");
  const at::Tensor full = model->forward(tokens, ctx);
  ModelState state = model->init_state(2, 12);
  for (int64_t t = 0; t < 12; ++t)
    testing::expect_close("step " + std::to_string(t), full.select(1, t), model->step(tokens.select(1, t), state), 1e-10);

  // Two packed documents: the second sees positions 0.. as if it ran alone.
  const int64_t eot = 0;
  tokens[0][4] = eot;
  MixerContext packed = ctx;
  packed.documents = documents_from_eot(tokens, eot);
  const at::Tensor both = model->forward(tokens, packed);
  const at::Tensor alone = model->forward(tokens.slice(1, 5).slice(0, 0, 1), ctx);
  testing::expect_close("second document", alone[0], both[0].slice(0, 5), 1e-10);
  // Without the restart the positions would differ and so would the logits.
  const at::Tensor shifted = model->forward(tokens.slice(0, 0, 1), ctx);
  EXPECT_GT((shifted[0].slice(0, 5) - alone[0]).abs().max().item<double>(), 1e-4);
}

TEST(Blocks, EveryPartInitialisesItsOwnParameters) {
  RunConfig cfg = small({"model.positions=learned", "model.block.norm=layernorm", "model.block.mlp=gelu",
                         "model.block.bias=true", "model.tie_embeddings=false"});
  LanguageModel model(cfg.model);
  {
    at::NoGradGuard g;
    for (auto& p : model->parameters()) p.fill_(std::nan(""));
  }
  model->init_parameters();
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(at::isfinite(item.value()).all().item<bool>()) << item.key() << " was not initialised";
    const std::string& n = item.key();
    if (n.size() >= 4 && n.compare(n.size() - 4, 4, "bias") == 0) {
      EXPECT_EQ(item.value().abs().max().item<double>(), 0.0) << n;
    }
  }
  // Residual-branch outputs at std / sqrt(2 · layers), inputs at std.
  auto params = model->named_parameters();
  EXPECT_NEAR(params["layers.0.mlp.down_proj.weight"].std().item<double>(), 0.02 / 2, 0.002);
  EXPECT_NEAR(params["layers.0.mlp.up_proj.weight"].std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(params["embed_positions.weight"].std().item<double>(), 0.02, 0.002);
  EXPECT_EQ(params["layers.1.input_layernorm.weight"].min().item<double>(), 1.0);
}

TEST(Blocks, UnknownPartsAreConfigErrorsAtTheirYamlPath) {
  const std::string layout = testing::config_error([] { small({"model.block.layout=post_nrom"}); });
  EXPECT_NE(layout.find("model.block.layout"), std::string::npos) << layout;
  EXPECT_NE(layout.find("post_norm"), std::string::npos) << layout;
  const std::string mlp = testing::config_error([] { small({"model.block.mlp=relu"}); });
  EXPECT_NE(mlp.find("model.block.mlp"), std::string::npos) << mlp;
  EXPECT_NE(mlp.find("swiglu"), std::string::npos) << mlp;
  const std::string pos = testing::config_error([] { small({"model.positions=rope"}); });
  EXPECT_NE(pos.find("model.positions"), std::string::npos) << pos;
}

TEST(Blocks, BlockSectionRoundTripsThroughTheResolvedYaml) {
  RunConfig cfg = small({"model.block.layout=parallel", "model.block.mlp=gelu_tanh", "model.block.bias=true",
                         "model.positions=learned"});
  const std::string yaml = cfg.to_yaml(), d = testing::temp_dir("blocks");
  {
    std::ofstream(d + "/resolved.yaml") << yaml;
  }
  RunConfig again = load_run_config(d + "/resolved.yaml", {});
  EXPECT_EQ(again.model.block.layout, "parallel");
  EXPECT_EQ(again.model.block.mlp, "gelu_tanh");
  EXPECT_TRUE(again.model.block.bias);
  EXPECT_EQ(again.model.positions, "learned");
  EXPECT_EQ(again.to_yaml(), yaml);
}

}  // namespace
}  // namespace attnlab
